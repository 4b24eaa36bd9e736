/**
 * Errors a person can act on, from real `cpns` processes: which file is missing and which flag sets it; a server
 * or GW that is not there (UNREACHABLE) vs a certificate not from this CA (TLS_REFUSED, "--ca") vs an enrollment
 * token that is unknown, used, expired or for the other role (ENROLL_REFUSED with the reason). Exit code 1, one
 * line `cpns: <CODE>: <message>`, no raw Node error text.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer } from '../../src/embed/index.js';
import { createCa } from '../../src/transport/ca.js';
import { freePort } from '../free-port.js';
import { CliProcesses, type RunResult, readJson } from './cli-process.js';

const root = mkdtempSync(join(tmpdir(), 'cpns-errors-'));
const cli = new CliProcesses();
const S = join(root, 'server');
const ca = join(S, 'ca.pem');
let info: { url: string; enrollUrl: string; adminUrl: string };
let gw: { url: string; enrollUrl: string };
let n = 0;
const dir = () => join(root, `d${n++}`);
const token = (role: 'gw' | 'pne', ...extra: string[]) =>
  cli.ok(['admin', 'token', 'create', '--role', role, '--data-dir', S, ...extra]);

afterAll(() => {
  cli.killAll();
  rmSync(root, { recursive: true, force: true });
});

beforeAll(async () => {
  cli.daemon(['server', '--data-dir', S, '--port', '0', '--enroll-port', '0', '--admin-port', '0']);
  info = await cli.until(() => readJson<typeof info>(join(S, 'server.json')));
  const G = dir();
  cli.daemon(
    [
      ...['gateway', '--data-dir', G, '--server', info.url, '--enroll-url', info.enrollUrl, '--ca', ca],
      ...['--port', '0', '--enroll-port', '0'],
    ],
    { env: { CPNS_TOKEN: await token('gw') } },
  );
  gw = await cli.until(() => readJson<typeof gw>(join(G, 'gateway.json')));
}, 120_000);

/** One line `cpns: CODE: message`, exit 1, nothing of Node's own error texts. */
function failure(r: RunResult, code: string): string {
  expect(r.code, r.stderr).toBe(1);
  const last = r.stderr.trim().split('\n').pop() ?? '';
  expect(last.startsWith(`cpns: ${code}: `), r.stderr).toBe(true);
  expect(r.stderr).not.toMatch(
    /ENOENT|ECONNREFUSED|ETIMEDOUT|UNABLE_TO_VERIFY|SELF_SIGNED|\n\s+at |Error:|\/\^/,
  );
  return last;
}

const gateway = (...a: string[]) =>
  cli.run(['gateway', '--data-dir', dir(), '--port', '0', '--enroll-port', '0', ...a]);

describe('cpns errors say what to do', () => {
  it('a missing file is named, with the flag that sets it', async () => {
    const tf = join(root, 'gw.token');
    writeFileSync(tf, 'x'.repeat(32), { mode: 0o600 });
    const noCa = failure(
      await gateway('--server', info.url, '--ca', join(root, 'nope.pem'), '--token-file', tf),
      'FILE_NOT_FOUND',
    );
    expect(noCa).toContain(join(root, 'nope.pem'));
    expect(noCa).toContain('--ca');
    const noToken = failure(
      await gateway('--server', info.url, '--ca', ca, '--token-file', join(root, 'nope.token')),
      'FILE_NOT_FOUND',
    );
    expect(noToken).toContain(join(root, 'nope.token'));
    expect(noToken).toContain('--token-file');
    const noConfig = failure(await gateway('--config', join(root, 'nope.json')), 'FILE_NOT_FOUND');
    expect(noConfig).toContain('--config');
    const badConfig = join(root, 'bad.json');
    writeFileSync(badConfig, '{ not json');
    expect(failure(await gateway('--config', badConfig), 'CONFIG_MALFORMED')).toContain(badConfig);
  }, 60_000);

  it('server unreachable vs certificate not from this CA', async () => {
    const dead = `wss://127.0.0.1:${await freePort()}/enroll`;
    const env = { env: { CPNS_TOKEN: await token('gw') } };
    const unreachable = failure(
      await cli.run(
        ['gateway', '--data-dir', dir(), '--server', info.url, '--enroll-url', dead, '--ca', ca],
        env,
      ),
      'UNREACHABLE',
    );
    expect(unreachable).toContain(dead);
    expect(unreachable).toMatch(/running/);

    const foreign = join(root, 'foreign-ca.pem');
    writeFileSync(foreign, (await createCa('another CA')).certPem);
    const wrongCa = failure(
      await cli.run(
        [
          'gateway',
          '--data-dir',
          dir(),
          '--server',
          info.url,
          '--enroll-url',
          info.enrollUrl,
          '--ca',
          foreign,
        ],
        env,
      ),
      'TLS_REFUSED',
    );
    expect(wrongCa).toContain('not issued by the CA in --ca');
    expect(wrongCa).toContain(foreign);
  }, 60_000);

  it('an enrollment token that is unknown, used, expired or for the other role says which', async () => {
    const enrollGw = (t: string) =>
      cli.run(
        [
          'gateway',
          '--data-dir',
          dir(),
          '--server',
          info.url,
          '--enroll-url',
          info.enrollUrl,
          '--ca',
          ca,
          '--port',
          '0',
          '--enroll-port',
          '0',
        ],
        {
          env: { CPNS_TOKEN: t },
        },
      );
    expect(failure(await enrollGw('never-issued-token-0123456789'), 'ENROLL_REFUSED')).toContain('unknown');
    expect(failure(await enrollGw(await token('pne')), 'ENROLL_REFUSED')).toContain('not for a gw');
    // expired: the admin API's shortest lifetime is 60 s; an in-process server makes a 1 s token
    const embedded = await startServer({ dataDir: dir(), port: 0, enrollPort: 0 });
    try {
      const expiring = await embedded.admin.createToken('gw', 1);
      const embeddedCa = join(root, 'embedded-ca.pem');
      writeFileSync(embeddedCa, embedded.caPem);
      await new Promise((r) => setTimeout(r, 1500));
      const r = await cli.run(
        [
          ...['gateway', '--data-dir', dir(), '--server', embedded.url, '--enroll-url', embedded.enrollUrl],
          ...['--ca', embeddedCa, '--port', '0', '--enroll-port', '0'],
        ],
        { env: { CPNS_TOKEN: expiring } },
      );
      expect(failure(r, 'ENROLL_REFUSED')).toContain('expired');
    } finally {
      await embedded.close();
    }
    // a PNE enrolling through the GW gets the server's reason too
    const pneToken = await token('pne');
    const pne = (t: string) =>
      cli.run(
        [
          'pne',
          'group',
          'create',
          '--name',
          'x',
          '--data-dir',
          dir(),
          '--gw',
          gw.url,
          '--enroll-url',
          gw.enrollUrl,
          '--ca',
          ca,
        ],
        {
          env: { CPNS_TOKEN: t },
        },
      );
    expect((await pne(pneToken)).code).toBe(0);
    const used = failure(await pne(pneToken), 'ENROLL_REFUSED');
    expect(used).toContain('already used');
    expect(used).toContain('cpns admin token create --role pne');
  }, 90_000);

  it('a listen port another process holds: ADDRESS_IN_USE, naming the address', async () => {
    const busy = createNetServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
    const port = (busy.address() as AddressInfo).port;
    try {
      const r = await cli.run(['server', '--data-dir', dir(), '--port', String(port), '--enroll-port', '0']);
      const line = failure(r, 'ADDRESS_IN_USE');
      expect(line).toContain(`127.0.0.1:${port}`);
    } finally {
      busy.close();
    }
  }, 60_000);

  it('a PNE whose GW is not there: UNREACHABLE, naming --gw', async () => {
    const P = dir();
    const dead = `wss://127.0.0.1:${await freePort()}/cpns`;
    const r = await cli.run(
      [
        'pne',
        'send',
        '--sg',
        '00000000-0000-4000-8000-000000000000',
        '--data',
        'x',
        '--data-dir',
        P,
        '--gw',
        dead,
        '--enroll-url',
        gw.enrollUrl,
        '--ca',
        ca,
      ],
      { env: { CPNS_TOKEN: await token('pne') } },
    );
    const line = failure(r, 'UNREACHABLE');
    expect(line).toContain(dead);
    expect(line).toContain('--gw');
  }, 60_000);

  it('cpns admin: server down vs wrong CA', async () => {
    const dead = `https://127.0.0.1:${await freePort()}`;
    const down = failure(await cli.run(['admin', 'pns', '--data-dir', S, '--url', dead]), 'UNREACHABLE');
    expect(down).toContain(dead);
    const foreign = join(root, 'foreign-admin-ca.pem');
    writeFileSync(foreign, (await createCa('another CA')).certPem);
    const wrong = failure(await cli.run(['admin', 'pns', '--data-dir', S, '--ca', foreign]), 'TLS_REFUSED');
    expect(wrong).toContain('not issued by the CA in');
    expect(wrong).toContain(foreign);
  }, 60_000);
});
