import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { PnGateway } from '../../src/gateway/index.js';
import { type Credentials, PneClient } from '../../src/pne/index.js';
import type { CpnsServer } from '../../src/server/index.js';
import { freePort } from '../free-port.js';
import { BACKOFF, enrollPne, inbox, startServer, tempDir, until } from './helpers.js';

const tmp = tempDir();
const closers: (() => Promise<unknown>)[] = [];

afterAll(async () => {
  for (const c of closers.reverse()) await c().catch(() => {});
  tmp.cleanup();
});

function withPort(url: string, port: number): string {
  const u = new URL(url);
  u.port = String(port);
  return u.toString();
}

/** A pino logger into an array of parsed lines. */
function capture(): { logger: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { logger: pino({ level: 'info' }, sink), lines };
}

describe('GW failover between server nodes', () => {
  it('[A, B]: A goes away, the GW registers at B, PNEs re-attach, a rekey at B reaches them, messages flow', async () => {
    let server: CpnsServer = await startServer(tmp.dir);
    closers.push(() => server.close());
    const aUrl = server.url;
    const bUrl = withPort(aUrl, await freePort());
    const gwCreds = await PnGateway.enroll({
      enrollUrl: server.enrollUrl,
      caPem: server.caPem,
      token: await server.admin.createToken('gw'),
    });
    const log = capture();
    // random 0: the rotation starts at A (index 0), so the test knows which node goes first.
    const gw = await PnGateway.start({
      serverUrls: [aUrl, bUrl],
      credentials: gwCreds,
      heartbeat: false,
      reconnect: { ...BACKOFF, random: () => 0 },
      logger: log.logger,
    });
    closers.push(() => gw.close());
    expect(gw.serverUrl).toBe(aUrl);
    const creds: Credentials[] = [await enrollPne(server, gw), await enrollPne(server, gw)];
    const [p, q] = await Promise.all(
      creds.map((c) =>
        PneClient.connect({ gwUrl: gw.url, credentials: c, heartbeat: false, reconnect: BACKOFF }),
      ),
    );
    if (!p || !q) throw new Error('PNEs did not start');
    closers.push(
      () => p.close(),
      () => q.close(),
    );
    const { sgId } = await p.createGroup({ name: 'failover', joinPolicy: 'open' });
    await q.joinGroup(sgId);
    await until(() => p.currentEpoch(sgId) === 2 && q.currentEpoch(sgId) === 2, 5000, 'keys at A');

    const t0 = Date.now();
    await server.close();
    const tAClosed = Date.now();
    server = await startServer(tmp.dir, { port: Number(new URL(bUrl).port) });
    const tBUp = Date.now();
    expect(server.url).toBe(bUrl);
    await until(() => gw.serverUrl === bUrl, 10_000, 'GW registered at B');
    const tRegistered = Date.now();
    await until(
      async () => (await server.admin.listPns())[0]?.pnes.filter((x) => x.online).length === 2,
      10_000,
      'PNEs re-attached at B',
    );
    await until(() => p.connected && q.connected, 10_000, 'server tunnels back through B');
    const tAttached = Date.now();
    const { epoch } = await server.admin.rekey(sgId);
    expect(epoch).toBe(3);
    await until(() => p.currentEpoch(sgId) === 3 && q.currentEpoch(sgId) === 3, 10_000, 'rekey at B');
    const tEpoch = Date.now();
    const got = inbox(q);
    p.send(sgId, 'after failover');
    await until(() => got.some((m) => m.plaintext.toString() === 'after failover'), 5000, 'message');
    expect(got.find((m) => m.plaintext.toString() === 'after failover')?.epoch).toBe(3);

    // The GW logged at info which node it registered with, A then B.
    const registered = log.lines.filter((l) => l.msg === 'registered with the server').map((l) => l.server);
    expect(registered).toEqual([aUrl, bUrl]);
    console.log(
      `GW failover A -> B: ${tEpoch - t0} ms from A's close to the PNEs holding the new epoch ` +
        `(A close ${tAClosed - t0} ms, B start ${tBUp - tAClosed} ms, GW registered at B +${tRegistered - tBUp} ms, ` +
        `PNEs re-attached +${tAttached - tRegistered} ms, rekey delivered +${tEpoch - tAttached} ms)`,
    );
  }, 60_000);
});

describe('PNE failover between GWs', () => {
  it('[GW1, GW2]: GW1 goes away, the PNE attaches through GW2 and catches up to the current epoch', async () => {
    const dir = tempDir();
    const server = await startServer(dir.dir);
    closers.push(async () => {
      await server.close();
      dir.cleanup();
    });
    const gws: PnGateway[] = [];
    for (let i = 0; i < 2; i++) {
      const g = await PnGateway.start({
        serverUrl: server.url,
        credentials: await PnGateway.enroll({
          enrollUrl: server.enrollUrl,
          caPem: server.caPem,
          token: await server.admin.createToken('gw'),
        }),
        heartbeat: false,
        reconnect: BACKOFF,
      });
      gws.push(g);
      closers.push(() => g.close());
    }
    const [gw1, gw2] = gws as [PnGateway, PnGateway];
    const mover = await PneClient.connect({
      gwUrls: [gw1.url, gw2.url],
      credentials: await enrollPne(server, gw1),
      heartbeat: false,
      reconnect: { ...BACKOFF, random: () => 0 },
    });
    closers.push(() => mover.close());
    const stay = await PneClient.connect({
      gwUrl: gw2.url,
      credentials: await enrollPne(server, gw2),
      heartbeat: false,
      reconnect: BACKOFF,
    });
    closers.push(() => stay.close());
    expect(mover.gwUrl).toBe(gw1.url);
    const { sgId } = await stay.createGroup({ name: 'mover', joinPolicy: 'open' });
    await mover.joinGroup(sgId);
    await until(() => mover.currentEpoch(sgId) === 2, 5000, 'mover key');

    const t0 = Date.now();
    await gw1.close();
    // While it moves, the key changes: it catches up at GW2.
    await server.admin.rekey(sgId);
    await until(() => mover.gwUrl === gw2.url, 10_000, 'PNE attached through GW2');
    await until(() => mover.currentEpoch(sgId) === 3, 10_000, 'catch-up at GW2');
    const t1 = Date.now();
    expect(gw2.pnes).toContain(mover.identity);
    const got = inbox(stay);
    mover.send(sgId, 'from GW2');
    await until(() => got.some((m) => m.plaintext.toString() === 'from GW2'), 5000, 'message via GW2');
    console.log(`PNE failover GW1 -> GW2: ${t1 - t0} ms from GW1's close to the PNE holding the new epoch`);
  }, 60_000);
});
