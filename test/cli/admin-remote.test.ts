/**
 * `cpns admin` against a server whose data directory it cannot see: only --url, --token-file and --ca (or
 * CPNS_ADMIN_URL, CPNS_ADMIN_TOKEN_FILE, CPNS_ADMIN_CA), from another working directory. Real processes.
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CliProcesses, readJson } from './cli-process.js';

const root = mkdtempSync(join(tmpdir(), 'cpns-admin-remote-'));
const cli = new CliProcesses();
const S = join(root, 'server');
// "another machine": a directory with only what the operator was handed (the token and the CA), as cwd
const elsewhere = join(root, 'operator');
let adminUrl = '';

afterAll(() => {
  cli.killAll();
  rmSync(root, { recursive: true, force: true });
});

beforeAll(async () => {
  cli.daemon(['server', '--data-dir', S, '--port', '0', '--enroll-port', '0', '--admin-port', '0']);
  ({ adminUrl } = await cli.until(() => readJson<{ adminUrl: string }>(join(S, 'server.json'))));
  mkdirSync(elsewhere, { mode: 0o700 });
  copyFileSync(join(S, 'admin.token'), join(elsewhere, 'admin.token'));
  copyFileSync(join(S, 'ca.pem'), join(elsewhere, 'ca.pem'));
}, 90_000);

describe('cpns admin from another machine', () => {
  it('--url, --token-file and --ca are all it needs (no data directory in sight)', async () => {
    const remote = ['--url', adminUrl, '--token-file', 'admin.token', '--ca', 'ca.pem'];
    const created = JSON.parse(
      await cli.ok(['admin', 'sg', 'create', '--name', 'remote', '--open', ...remote], { cwd: elsewhere }),
    );
    expect(created.sgId).toMatch(/^[0-9a-f-]{36}$/);
    const list = JSON.parse(await cli.ok(['admin', 'sg', 'list', ...remote], { cwd: elsewhere }));
    expect(list.map((g: { sgId: string }) => g.sgId)).toContain(created.sgId);
    const token = await cli.ok(['admin', 'token', 'create', '--role', 'pne', ...remote], { cwd: elsewhere });
    expect(token).toMatch(/^\S{20,}$/);
  }, 60_000);

  it('... or the environment: CPNS_ADMIN_URL, CPNS_ADMIN_TOKEN_FILE, CPNS_ADMIN_CA', async () => {
    const env = {
      CPNS_ADMIN_URL: adminUrl,
      CPNS_ADMIN_TOKEN_FILE: join(elsewhere, 'admin.token'),
      CPNS_ADMIN_CA: join(elsewhere, 'ca.pem'),
    };
    const pns = JSON.parse(await cli.ok(['admin', 'pns'], { cwd: elsewhere, env }));
    expect(pns).toEqual([]);
    // a flag wins over its variable
    const wrong = join(elsewhere, 'wrong.token');
    writeFileSync(wrong, 'not-the-admin-token\n', { mode: 0o600 });
    const r = await cli.run(['admin', 'pns', '--token-file', wrong], { cwd: elsewhere, env });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('cpns: UNAUTHORIZED');
  }, 60_000);

  it('a missing piece is named with the flag that gives it; the token never on the command line', async () => {
    const noCa = await cli.run(['admin', 'pns', '--url', adminUrl, '--token-file', 'admin.token'], {
      cwd: elsewhere,
    });
    expect(noCa.code).toBe(1);
    expect(noCa.stderr).toMatch(/CA certificate: .*\/cpns\/server\/ca\.pem: no such file; give --ca/);
    const noToken = await cli.run(['admin', 'pns', '--url', adminUrl, '--ca', 'ca.pem'], { cwd: elsewhere });
    expect(noToken.code).toBe(1);
    expect(noToken.stderr).toMatch(/admin token: .*admin\.token: no such file; give --token-file/);
    const nothing = await cli.run(['admin', 'pns'], { cwd: elsewhere });
    expect(nothing.code).toBe(1);
    expect(nothing.stderr).toContain('server.json: no such file');
    expect(nothing.stderr).toContain('--url, --token-file and --ca');
    const onArgv = await cli.run(['admin', 'pns', '--url', adminUrl, '--ca', 'ca.pem', '--token', 'x'], {
      cwd: elsewhere,
    });
    expect(onArgv.code).toBe(2);
    expect(onArgv.stderr).toContain('--token is not accepted');
    const http = await cli.run(['admin', 'pns', '--url', 'http://127.0.0.1:1', '--ca', 'ca.pem'], {
      cwd: elsewhere,
    });
    expect(http.code).toBe(1);
    expect(http.stderr).toContain('--url must be an https:// URL');
  }, 60_000);

  it('the server is authenticated by its CPNS identity, not the host name: localhost works as well', async () => {
    const url = adminUrl.replace('127.0.0.1', 'localhost');
    const out = await cli.ok(
      ['admin', 'identities', '--url', url, '--token-file', 'admin.token', '--ca', 'ca.pem'],
      {
        cwd: elsewhere,
      },
    );
    expect(JSON.parse(out)).toEqual([]);
  }, 60_000);
});
