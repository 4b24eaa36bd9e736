/**
 * After enrollment a GW and a PNE keep their connection settings in their data directory (settings.json), so the
 * next start needs only --data-dir. Real processes.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../free-port.js';
import { CliProcesses, exited, readJson } from './cli-process.js';

const root = mkdtempSync(join(tmpdir(), 'cpns-settings-'));
const cli = new CliProcesses();

afterAll(() => {
  cli.killAll();
  rmSync(root, { recursive: true, force: true });
});

interface GwInfo {
  identity: string;
  url: string;
  enrollUrl: string;
}

describe('GW and PNE settings saved in the data directory', () => {
  it('first start with everything; every later start with --data-dir only', async () => {
    const S = join(root, 'server');
    const G = join(root, 'gw');
    const P = join(root, 'pne');
    const server = cli.daemon([
      'server',
      '--data-dir',
      S,
      '--port',
      '0',
      '--enroll-port',
      '0',
      '--admin-port',
      '0',
    ]);
    const info = await cli.until(() => readJson<{ url: string; enrollUrl: string }>(join(S, 'server.json')));
    const ca = join(S, 'ca.pem');

    // a fresh data directory and no --server: a usage error that says what to give
    const fresh = await cli.run(['gateway', '--data-dir', join(root, 'fresh')]);
    expect(fresh.code).toBe(2);
    expect(fresh.stderr).toContain('--server');
    expect(fresh.stderr).toContain('CPNS_SERVER_URL');

    const gwToken = join(root, 'gw.token');
    writeFileSync(gwToken, await cli.ok(['admin', 'token', 'create', '--role', 'gw', '--data-dir', S]), {
      mode: 0o600,
    });
    const port = await freePort();
    const enrollPort = await freePort();
    const args = ['--server', info.url, '--enroll-url', info.enrollUrl, '--ca', ca, '--token-file', gwToken];
    const ports = ['--port', String(port), '--enroll-port', String(enrollPort)];
    let gw = cli.daemon(['gateway', '--data-dir', G, ...args, ...ports]);
    const first = await cli.until(() => readJson<GwInfo>(join(G, 'gateway.json')));
    expect(readJson(join(G, 'settings.json'))).toEqual({
      server: [info.url],
      host: '127.0.0.1',
      port,
      'enroll-port': enrollPort,
      media: 'wifi',
    });

    // the PNE: enrolls with --gw, --enroll-url, --ca and a token ...
    const pneToken = await cli.ok(['admin', 'token', 'create', '--role', 'pne', '--data-dir', S]);
    const created = JSON.parse(
      await cli.ok(
        [
          'pne',
          'group',
          'create',
          '--name',
          'saved',
          '--data-dir',
          P,
          '--gw',
          first.url,
          '--enroll-url',
          first.enrollUrl,
          '--ca',
          ca,
          '--token-file',
          '-',
        ],
        { input: pneToken },
      ),
    );
    expect(readJson(join(P, 'settings.json'))).toEqual({ gw: [first.url] });
    // ... then needs only its data directory
    const sent = JSON.parse(
      await cli.ok(['pne', 'send', '--sg', created.sgId, '--data', 'only --data-dir', '--data-dir', P]),
    );
    expect(sent).toMatchObject({ event: 'sent', sgId: created.sgId });

    // the GW restarts with --data-dir only: same identity, same URLs
    gw.kill('SIGTERM');
    expect(await exited(gw)).toBe(0);
    rmSync(join(G, 'gateway.json'));
    gw = cli.daemon(['gateway', '--data-dir', G]);
    const second = await cli.until(() => readJson<GwInfo>(join(G, 'gateway.json')));
    expect(second).toEqual(first);
    await cli.ok(['pne', 'send', '--sg', created.sgId, '--data', 'after the GW restart', '--data-dir', P]);

    // the command line still wins (and is saved for the next start)
    expect(
      (
        await cli.run([
          'pne',
          'send',
          '--sg',
          created.sgId,
          '--data',
          'x',
          '--data-dir',
          P,
          '--gw',
          'http://x',
        ])
      ).code,
    ).toBe(2);
    expect(readJson(join(P, 'settings.json'))).toEqual({ gw: [first.url] });

    for (const d of [gw, server]) d.kill('SIGTERM');
    expect(await Promise.all([exited(gw), exited(server)])).toEqual([0, 0]);
  }, 240_000);
});
