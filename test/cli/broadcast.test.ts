/**
 * Broadcast Group Key delivery from the CLI (docs/cli.md "Broadcast"): a GW given `--media wifi=<group>:<port>`
 * broadcasts GKEK-wrapped key updates on that UDP multicast group; a `pne listen` on wifi (the default) installs
 * them from the broadcast, one on bt only gets them by unicast. Real processes, loopback multicast.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../free-port.js';
import { CliProcesses, readJson } from './cli-process.js';

const root = mkdtempSync(join(tmpdir(), 'cpns-cli-bc-'));
const cli = new CliProcesses();
afterAll(() => {
  cli.killAll();
  rmSync(root, { recursive: true, force: true });
});

interface Status {
  currentEpoch: number;
  members: { pneId: string; ackedEpoch: number | null; method: string | null; lag: number }[];
}

describe('cpns gateway --media <medium>=<group>:<port>', () => {
  it('refuses a unicast address, a bad port, an unknown medium and groups on a PNE (exit 2)', async () => {
    const gw = (media: string) =>
      cli.run([
        'gateway',
        '--data-dir',
        join(root, 'bad'),
        '--server',
        'wss://127.0.0.1:1/cpns',
        '--media',
        media,
      ]);
    for (const [media, says] of [
      ['wifi=10.0.0.1:47701', 'multicast group'],
      ['wifi=239.255.77.1:0', 'port'],
      ['wifi=239.255.77.1', 'multicast group'],
      ['radio', 'medium is one of'],
      ['wifi,wifi', 'twice'],
    ] as const) {
      const r = await gw(media);
      expect(r.code, media).toBe(2);
      expect(r.stderr, media).toContain(says);
    }
    const pne = await cli.run([
      'pne',
      'listen',
      '--data-dir',
      join(root, 'badpne'),
      '--gw',
      'wss://127.0.0.1:1/cpns',
      '--media',
      'wifi=239.255.77.1:47701',
    ]);
    expect(pne.code).toBe(2);
    expect(pne.stderr).toContain('names media only');
  }, 60_000);

  it('key updates reach the wifi PNE by broadcast and the bt-only PNE by unicast', async () => {
    const S = join(root, 'server');
    cli.daemon(['server', '--data-dir', S, '--port', '0', '--enroll-port', '0', '--admin-port', '0']);
    const info = await cli.until(() => readJson<{ url: string; enrollUrl: string }>(join(S, 'server.json')));
    const ca = join(S, 'ca.pem');
    const admin = async (...a: string[]) => cli.ok(['admin', ...a, '--data-dir', S]);

    const G = join(root, 'gw');
    const udp = 40_000 + Math.floor(Math.random() * 20_000);
    const group = `239.255.${Math.floor(Math.random() * 200) + 20}.${Math.floor(Math.random() * 250) + 1}`;
    cli.daemon(
      [
        'gateway',
        '--data-dir',
        G,
        '--server',
        info.url,
        '--enroll-url',
        info.enrollUrl,
        '--ca',
        ca,
        '--port',
        String(await freePort()),
        '--enroll-port',
        String(await freePort()),
        '--media',
        `wifi=${group}:${udp},bt`,
      ],
      { env: { CPNS_TOKEN: await admin('token', 'create', '--role', 'gw') } },
    );
    const gw = await cli.until(() => readJson<{ url: string; enrollUrl: string }>(join(G, 'gateway.json')));
    expect(readJson(join(G, 'settings.json'))).toMatchObject({ media: `wifi=${group}:${udp},bt` });

    const enroll = async (name: string) =>
      cli.ok(
        [
          'pne',
          'enroll',
          '--data-dir',
          join(root, name),
          '--gw',
          gw.url,
          '--enroll-url',
          gw.enrollUrl,
          '--ca',
          ca,
          '--token-file',
          '-',
        ],
        { input: await admin('token', 'create', '--role', 'pne') },
      );
    const wifiPne = await enroll('p-wifi');
    const btPne = await enroll('p-bt');
    const wifi = cli.daemon(['pne', 'listen', '--data-dir', join(root, 'p-wifi')]);
    const bt = cli.daemon(['pne', 'listen', '--data-dir', join(root, 'p-bt'), '--media', 'bt']);
    await cli.until(
      () => wifi.lines.some((l) => l.includes('"ready"')) && bt.lines.some((l) => l.includes('"ready"')),
    );

    const sgId = await admin('sg', 'create', '--name', 'bc', '--member', wifiPne, '--member', btPne, '--id');
    await admin('sg', 'policy', sgId, '--broadcast-threshold', '1', '--ack-timeout', '3000');
    const status = async () => JSON.parse(await admin('sg', 'status', sgId, '--json')) as Status;
    const settled = async () => {
      for (const end = Date.now() + 60_000; Date.now() < end; ) {
        const st = await status();
        if (st.members.length === 2 && st.members.every((m) => m.lag === 0 && m.ackedEpoch !== null))
          return st;
        await new Promise((r) => setTimeout(r, 200));
      }
      throw new Error(`not all acked: ${JSON.stringify(await status())}`);
    };
    await settled();
    // the first key of a PNE goes by unicast (it has no GKDK of this GW's tree yet); the next by broadcast
    await admin('sg', 'rekey', sgId);
    const st = await settled();
    const by = new Map(st.members.map((m) => [m.pneId, m.method]));
    expect(by.get(wifiPne)).toBe('broadcast');
    expect(by.get(btPne)).toBe('unicast');
  }, 180_000);
});
