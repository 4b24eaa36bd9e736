/**
 * One data-directory convention (docs/cli.md "Data directories"): CPNS_DATA_DIR is the root holding one directory
 * per role, for every command; without it the XDG data directory; --data-dir names one role's own directory.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dataRoot, defaultDataDir } from '../../src/cli/data-dir.js';
import { CliProcesses, readJson } from './cli-process.js';

describe('dataRoot / defaultDataDir', () => {
  it('CPNS_DATA_DIR is the root of every role', () => {
    const env = { CPNS_DATA_DIR: '/srv/cpns', XDG_DATA_HOME: '/x', HOME: '/home/u' };
    expect(dataRoot(env)).toBe('/srv/cpns');
    expect(defaultDataDir('server', env)).toBe('/srv/cpns/server');
    expect(defaultDataDir('gateway', env)).toBe('/srv/cpns/gateway');
    expect(defaultDataDir('pne', env)).toBe('/srv/cpns/pne');
  });
  it('else $XDG_DATA_HOME/cpns, else ~/.local/share/cpns', () => {
    expect(dataRoot({ XDG_DATA_HOME: '/x', HOME: '/home/u' })).toBe('/x/cpns');
    expect(dataRoot({ HOME: '/home/u' })).toBe('/home/u/.local/share/cpns');
    expect(dataRoot({ XDG_DATA_HOME: '', HOME: '/home/u' })).toBe('/home/u/.local/share/cpns');
    expect(dataRoot({})).toBe(join(homedir(), '.local/share/cpns'));
  });
  it('a relative XDG_DATA_HOME is ignored, as the XDG spec requires', () => {
    expect(dataRoot({ XDG_DATA_HOME: 'rel/dir', HOME: '/home/u' })).toBe('/home/u/.local/share/cpns');
  });
});

const tmp = mkdtempSync(join(tmpdir(), 'cpns-datadir-'));
const cli = new CliProcesses();
afterAll(() => {
  cli.killAll();
  rmSync(tmp, { recursive: true, force: true });
});

describe('the convention in real processes', () => {
  it('server with no --data-dir uses $XDG_DATA_HOME/cpns/server; admin finds it there and through CPNS_DATA_DIR', async () => {
    const xdg = join(tmp, 'xdg');
    const env = { XDG_DATA_HOME: xdg, HOME: join(tmp, 'home') };
    cli.daemon(['server', '--port', '0', '--enroll-port', '0', '--admin-port', '0'], { env });
    const dir = join(xdg, 'cpns', 'server');
    await cli.until(() => readJson(join(dir, 'server.json')));
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    const viaXdg = JSON.parse(await cli.ok(['admin', 'sg', 'list', '--json'], { env }));
    expect(Array.isArray(viaXdg.groups ?? viaXdg)).toBe(true);
    // the same directory named as the root: every role's directory is under it
    const viaRoot = await cli.run(['admin', 'sg', 'list', '--json'], {
      env: { HOME: join(tmp, 'home'), CPNS_DATA_DIR: join(xdg, 'cpns') },
    });
    expect(viaRoot.code).toBe(0);
    // a root without a server: the error names the directory it looked in
    const none = await cli.run(['admin', 'sg', 'list'], { env: { CPNS_DATA_DIR: join(tmp, 'empty') } });
    expect(none.code).toBe(1);
    expect(none.stderr).toContain(join(tmp, 'empty', 'server'));
  });
});
