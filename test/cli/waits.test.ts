/**
 * Long waits say what they wait for, at level info: `cpns admin --wait` for the server, `cpns pne enroll` for
 * its GW (not up yet, then not connected yet), a GW for its server when it goes down. Real processes.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../free-port.js';
import { CliProcesses, exited, readJson } from './cli-process.js';

const root = mkdtempSync(join(tmpdir(), 'cpns-waits-'));
const cli = new CliProcesses({
  CPNS_LOG_LEVEL: 'info',
});

afterAll(() => {
  cli.killAll();
  rmSync(root, { recursive: true, force: true });
});

describe('long waits say what they wait for', () => {
  it('admin --wait, pne enroll before its GW is up, a GW whose server goes down', async () => {
    const S = join(root, 'server');
    const ports = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
    const [sPort, sEnroll, sAdmin, gPort, gEnroll] = ports.map(String) as [
      string,
      string,
      string,
      string,
      string,
    ];
    // the token is asked for before the server exists: --wait says so and waits
    const tokenRun = cli.run(['admin', 'token', 'create', '--role', 'gw', '--wait', '--data-dir', S]);
    await new Promise((r) => setTimeout(r, 1500));
    const serverArgs = [
      'server',
      '--data-dir',
      S,
      '--port',
      sPort,
      '--enroll-port',
      sEnroll,
      '--admin-port',
      sAdmin,
    ];
    let server = cli.daemon(serverArgs);
    const token = await tokenRun;
    expect(token.code, token.stderr).toBe(0);
    expect(token.stderr).toContain('waiting for the CPNS Server');
    expect(token.stdout).toMatch(/^\S{20,}$/);
    const ca = join(S, 'ca.pem');
    const info = await cli.until(() => readJson<{ url: string; enrollUrl: string }>(join(S, 'server.json')));

    // the PNE enrolls before its GW is up: it waits, saying for what, then prints its identity
    const pneToken = join(root, 'pne.token');
    writeFileSync(pneToken, await cli.ok(['admin', 'token', 'create', '--role', 'pne', '--data-dir', S]), {
      mode: 0o600,
    });
    const P = join(root, 'pne');
    const gwUrl = `wss://127.0.0.1:${gPort}/cpns`;
    const enrolling = cli.run([
      ...[
        'pne',
        'enroll',
        '--data-dir',
        P,
        '--gw',
        gwUrl,
        '--enroll-url',
        `wss://127.0.0.1:${gEnroll}/enroll`,
      ],
      ...['--ca', ca, '--token-file', pneToken],
    ]);
    await new Promise((r) => setTimeout(r, 2000));
    const G = join(root, 'gw');
    const gw = cli.daemon(
      [
        ...['gateway', '--data-dir', G, '--server', info.url, '--enroll-url', info.enrollUrl, '--ca', ca],
        ...['--port', gPort, '--enroll-port', gEnroll],
      ],
      { env: { CPNS_TOKEN: token.stdout } },
    );
    const enrolled = await enrolling;
    expect(enrolled.code, enrolled.stderr).toBe(0);
    expect(enrolled.stdout).toMatch(/^urn:cpns:pne:[0-9a-f-]{36}$/);
    expect(enrolled.stderr).toMatch(
      /waiting for the PN GW to enroll \(nothing answers at its enrollment URL yet\)/,
    );
    expect(enrolled.stderr).toMatch(/"level":30/); // info
    // enrolled already: prints the same identity, needs nothing but --data-dir
    expect(await cli.ok(['pne', 'enroll', '--data-dir', P])).toBe(enrolled.stdout);

    // the server goes away: the GW says it is waiting for it, at info, and re-registers when it is back
    await cli.until(() => gw.logs.join('').includes('registered with the server'));
    server.kill('SIGTERM');
    expect(await exited(server)).toBe(0);
    await cli.until(() => gw.logs.join('').includes('CPNS Server not reachable, retrying in'));
    expect(gw.logs.join('')).toMatch(/"level":30[^\n]*CPNS Server not reachable/);
    server = cli.daemon(serverArgs);
    await cli.until(
      () => (gw.logs.join('').match(/registered with the server/g)?.length ?? 0) >= 2 || undefined,
      60_000,
    );
    for (const d of [gw, server]) d.kill('SIGTERM');
    expect(await Promise.all([exited(gw), exited(server)])).toEqual([0, 0]);
  }, 180_000);
});
