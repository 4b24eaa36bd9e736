/**
 * ReconnectingClient over a list of URLs (docs/transport.md "Failover over a list of URLs"): real SecureServers on
 * loopback, a dead port, a wrong peer; and the rotation/backoff schedule as pure functions (src/transport/failover.ts).
 */
import net from 'node:net';
import fc from 'fast-check';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { backoffDelay } from '../../src/transport/backoff.js';
import { issueServerCert } from '../../src/transport/ca.js';
import { isTransportError } from '../../src/transport/errors.js';
import {
  establishedRotation,
  firstRotation,
  nextRotation,
  type Rotation,
  urlList,
} from '../../src/transport/failover.js';
import { MAX_RECONNECT_URLS } from '../../src/transport/limits.js';
import { ReconnectingClient } from '../../src/transport/reconnecting-client.js';
import { SecureServer, type SecureServerOptions } from '../../src/transport/secure-server.js';
import type { Session } from '../../src/transport/session.js';
import { makePki, type Pki, waitFor } from './fixtures.js';

let pki: Pki;
const servers: SecureServer[] = [];
const clients: ReconnectingClient[] = [];

beforeAll(async () => {
  pki = await makePki();
});
afterEach(async () => {
  for (const c of clients.splice(0)) c.stop();
  await Promise.all(servers.splice(0).map((s) => s.close(100)));
});

async function startServer(extra: Partial<SecureServerOptions> = {}): Promise<SecureServer> {
  const s = new SecureServer({
    certPem: pki.server.certPem,
    keyPem: pki.server.keyPem,
    caPem: pki.ca.certPem,
    ...extra,
  });
  servers.push(s);
  await s.listen();
  return s;
}

async function stopServer(s: SecureServer): Promise<void> {
  servers.splice(servers.indexOf(s), 1);
  await s.close(100);
}

/** A loopback port nothing listens on (connects are refused at once). */
async function deadUrl(): Promise<string> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return `wss://127.0.0.1:${port}/cpns`;
}

const clientOpts = () => ({
  certPem: pki.gw.certPem,
  keyPem: pki.gw.keyPem,
  caPem: pki.ca.certPem,
  heartbeat: false as const,
  expectedServerRole: 'server' as const,
});

/** A client whose rotation starts at index 0 (random = 0 also makes every jittered delay its maximum). */
function client(urls: string | string[], backoff: { initialMs?: number; maxMs?: number } = {}) {
  const rc = new ReconnectingClient(urls, clientOpts(), { ...backoff, random: () => 0 });
  clients.push(rc);
  return rc;
}

describe('rotation and backoff schedule (pure)', () => {
  const o = { initialMs: 100, maxMs: 1600, factor: 2, jitter: 0.5 };
  const zero = () => 0;

  it('starts at a random index, spread over the list', () => {
    expect(firstRotation(3, () => 0).index).toBe(0);
    expect(firstRotation(3, () => 0.5).index).toBe(1);
    expect(firstRotation(3, () => 0.9999).index).toBe(2);
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < 4000; i++) counts[firstRotation(4).index]!++;
    for (const c of counts) expect(c).toBeGreaterThan(800);
  });

  it('property: every round visits each URL once, moves at once inside a round, backs off at its end', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 0, max: 7 }),
        fc.integer({ min: 1, max: 6 }),
        (n, start, rounds) => {
          let r: Rotation = { index: start % n, inRound: 0, rounds: 0 };
          for (let round = 0; round < rounds; round++) {
            const seen: number[] = [];
            for (let k = 0; k < n; k++) {
              seen.push(r.index);
              const step = nextRotation(r, n, 'failed', o, zero);
              r = step.rotation;
              // Inside a round: the next URL at once; at the round's end: the backoff of that round.
              expect(step.delayMs).toBe(k < n - 1 ? 0 : backoffDelay(round, o, zero));
            }
            expect([...seen].sort((a, b) => a - b)).toEqual([...Array(n).keys()]);
            // Round robin: each round starts where the first did.
            expect(r.index).toBe(start % n);
          }
        },
      ),
    );
  });

  it('with one URL the schedule is the single-URL backoff, attempt by attempt', () => {
    let r = firstRotation(1);
    for (let a = 0; a < 10; a++) {
      const step = nextRotation(r, 1, 'failed', o, zero);
      expect(step.delayMs).toBe(backoffDelay(a, o, zero));
      r = step.rotation;
    }
  });

  it('a lost session: the next URL after the first backoff step; a failed round then grows it', () => {
    const up = establishedRotation(1);
    const lost = nextRotation(up, 3, 'lost', o, zero);
    expect(lost).toEqual({
      rotation: { index: 2, inRound: 0, rounds: 1 },
      delayMs: backoffDelay(0, o, zero),
    });
    let r = lost.rotation;
    const delays: number[] = [];
    for (let k = 0; k < 3; k++) {
      const s = nextRotation(r, 3, 'failed', o, zero);
      delays.push(s.delayMs);
      r = s.rotation;
    }
    expect(delays).toEqual([0, 0, backoffDelay(1, o, zero)]);
  });

  it('a removed URL: the one after it is next, the round shrinks with the list', () => {
    // [a, b, c], attempt at b (index 1) failed as a wrong peer: b is gone, c now sits at index 1.
    const s = nextRotation({ index: 1, inRound: 1, rounds: 0 }, 2, 'removed', o, zero);
    expect(s).toEqual({ rotation: { index: 1, inRound: 1, rounds: 0 }, delayMs: 0 });
    // ...c fails: the round over [a, c] is complete (a failed before): back off.
    expect(nextRotation(s.rotation, 2, 'failed', o, zero).delayMs).toBe(backoffDelay(0, o, zero));
  });

  it('URL lists: one string or a non-empty list, deduplicated, at most MAX_RECONNECT_URLS', () => {
    expect(urlList('wss://a')).toEqual(['wss://a']);
    expect(urlList(['wss://a', 'wss://b', 'wss://a'])).toEqual(['wss://a', 'wss://b']);
    expect(() => urlList([])).toThrow(TypeError);
    expect(() => urlList(['wss://a', ''])).toThrow(TypeError);
    const many = Array.from({ length: MAX_RECONNECT_URLS + 1 }, (_, i) => `wss://h${i}`);
    expect(() => urlList(many)).toThrow(TypeError);
    expect(urlList(many.slice(1))).toHaveLength(MAX_RECONNECT_URLS);
  });
});

describe('failover between real servers', () => {
  it('[dead, live]: connects to the live one without a backoff for the dead; the events name the URLs', async () => {
    const live = await startServer();
    const dead = await deadUrl();
    // A backoff this long would fail the test if the dead URL cost one before the live one is tried.
    const rc = client([dead, live.url], { initialMs: 20_000, maxMs: 20_000 });
    const errors: string[] = [];
    rc.on('connect-error', (_e: unknown, delay: number, url: string) => errors.push(`${url} ${delay}`));
    const t0 = Date.now();
    const session = waitFor<unknown>(rc, 'session');
    rc.start();
    const [s, url] = await session;
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(url).toBe(live.url);
    expect((s as Session).identity).toBe(pki.server.identity);
    expect(errors).toEqual([`${dead} 0`]);
    expect(rc.url).toBe(live.url);
  });

  it('open() tries the whole round in the foreground: [dead, live] resolves with the live one', async () => {
    const live = await startServer();
    const rc = client([await deadUrl(), live.url], { initialMs: 20_000 });
    const s = await rc.open();
    expect(s.isOpen).toBe(true);
    expect(rc.url).toBe(live.url);
  });

  it('open() over only dead URLs rejects with the last error after one round', async () => {
    const rc = client([await deadUrl(), await deadUrl()], { initialMs: 20_000 });
    await expect(rc.open()).rejects.toSatisfy((e) => isTransportError(e, 'UNREACHABLE'));
  });

  it('killing the live node moves the client to the next; again to the one after', async () => {
    const [a, b, c] = [await startServer(), await startServer(), await startServer()];
    const rc = client([a.url, b.url, c.url], { initialMs: 20, maxMs: 100 });
    const urls: string[] = [];
    rc.on('session', (_s: Session, url: string) => urls.push(url));
    const first = waitFor<unknown>(rc, 'established');
    rc.start();
    expect((await first)[2]).toBe(a.url);
    const t0 = Date.now();
    const second = waitFor<unknown>(rc, 'established');
    await stopServer(a);
    expect((await second)[2]).toBe(b.url);
    const third = waitFor<unknown>(rc, 'established');
    await stopServer(b);
    expect((await third)[2]).toBe(c.url);
    expect(urls).toEqual([a.url, b.url, c.url]);
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  it('all nodes down: keeps going round, and comes back to the first node that returns', async () => {
    const a = await startServer();
    const port = a.port;
    const dead = await deadUrl();
    const rc = client([a.url, dead], { initialMs: 20, maxMs: 60 });
    await waitFor(rc.start(), 'established');
    const retries: string[] = [];
    rc.on('retry', (_n: number, _d: number, url: string) => retries.push(url));
    await stopServer(a);
    // At least two full rounds while nothing listens.
    while (retries.length < 4) await waitFor(rc, 'connect-error');
    expect(retries.slice(0, 4)).toEqual([dead, a.url, dead, a.url]);
    const back = waitFor<unknown>(rc, 'session');
    const a2 = await startServer({ port });
    expect((await back)[1]).toBe(a2.url);
  });

  it('a wrong peer in the list is dropped (excluded) and the next URL used; a wrong peer alone is fatal', async () => {
    const node2 = await issueServerCert(pki.ca, 'urn:cpns:server:node2');
    const wrong = await startServer({ certPem: node2.certPem, keyPem: node2.keyPem });
    const right = await startServer();
    const opts = { ...clientOpts(), expectedServerIdentity: pki.server.identity };
    const rc = new ReconnectingClient([wrong.url, right.url], opts, { initialMs: 20, random: () => 0 });
    clients.push(rc);
    const excluded = waitFor<unknown>(rc, 'excluded');
    const session = waitFor<unknown>(rc, 'session');
    rc.start();
    const [err, url] = await excluded;
    expect(isTransportError(err, 'PEER_IDENTITY_MISMATCH')).toBe(true);
    expect(url).toBe(wrong.url);
    expect((await session)[1]).toBe(right.url);
    expect(rc.urls).toEqual([right.url]);

    const alone = new ReconnectingClient(wrong.url, opts, { initialMs: 20 });
    clients.push(alone);
    const fatal = waitFor<unknown>(alone, 'fatal');
    alone.start();
    expect(isTransportError((await fatal)[0], 'PEER_IDENTITY_MISMATCH')).toBe(true);
  });

  it('a revoked identity stops at the first node that says so: no other URL is tried', async () => {
    const revoking = await startServer({ isRevoked: () => true });
    const other = await startServer();
    let otherSessions = 0;
    other.on('session', () => otherSessions++);
    const rc = client([revoking.url, other.url], { initialMs: 20 });
    const fatal = waitFor<unknown>(rc, 'fatal');
    rc.start();
    expect(isTransportError((await fatal)[0], 'REVOKED')).toBe(true);
    await new Promise((r) => setTimeout(r, 100));
    expect(otherSessions).toBe(0);
  });
});
