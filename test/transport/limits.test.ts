/**
 * docs/transport.md "Limits": connection limits and the anonymous surface. Each limit is tested at exactly the limit and one
 * past it, and each refusal has its own reason (the SecureServer's 'refused' event) or close code.
 */
import net from 'node:net';
import tls from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connectAnonymousSession, connectSession } from '../../src/transport/connect-session.js';
import type { ConnectionLimits } from '../../src/transport/limits.js';
import { SecureServer, type SecureServerOptions } from '../../src/transport/secure-server.js';
import { CloseCode, type Session } from '../../src/transport/session.js';
import { makePki, type Pki, waitFor } from './fixtures.js';

let pki: Pki;
const servers: SecureServer[] = [];
const sockets: net.Socket[] = [];

beforeAll(async () => {
  pki = await makePki();
});
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(servers.splice(0).map((s) => s.close(100)));
});

async function start(
  limits: Partial<ConnectionLimits>,
  extra: Partial<SecureServerOptions> = {},
): Promise<{ srv: SecureServer; refusals: string[] }> {
  const srv = new SecureServer({
    certPem: pki.server.certPem,
    keyPem: pki.server.keyPem,
    caPem: pki.ca.certPem,
    heartbeat: false,
    limits,
    ...extra,
  });
  const refusals: string[] = [];
  srv.on('refused', (reason: string) => refusals.push(reason));
  servers.push(srv);
  await srv.listen();
  return { srv, refusals };
}

const gwOpts = () => ({
  certPem: pki.gw.certPem,
  keyPem: pki.gw.keyPem,
  caPem: pki.ca.certPem,
  heartbeat: false as const,
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A TCP connection that never speaks; resolves once connected. `from` picks the loopback source address. */
function idleTcp(port: number, from = '127.0.0.1'): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port, localAddress: from });
    sockets.push(s);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

const isClosed = (s: net.Socket) => s.destroyed || s.readyState === 'closed' || s.readableEnded;

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timeout');
    await sleep(10);
  }
}

describe('unauthenticated connections are bounded', () => {
  it('per address: exactly the limit is accepted, one past it is dropped before TLS (limit-address)', async () => {
    const { srv, refusals } = await start({ maxUnauthenticatedPerAddress: 3, maxUnauthenticated: 100 });
    const ok = await Promise.all([1, 2, 3].map(() => idleTcp(srv.port, '127.0.0.2')));
    await until(() => srv.unauthenticatedCount === 3);
    const past = await idleTcp(srv.port, '127.0.0.2');
    past.resume();
    await until(() => isClosed(past));
    expect(refusals[0]).toBe('limit-address');
    expect(ok.some(isClosed)).toBe(false);
    // Another address is not affected; and a freed slot can be used again.
    const other = await idleTcp(srv.port, '127.0.0.3');
    ok[0]!.destroy();
    await until(() => srv.unauthenticatedCount === 3);
    const again = await idleTcp(srv.port, '127.0.0.2');
    await sleep(100);
    expect(isClosed(other) || isClosed(again)).toBe(false);
    expect(srv.unauthenticatedCount).toBe(4);
  });

  it('in total: exactly the limit is accepted, one past it is dropped (limit-total)', async () => {
    const { srv, refusals } = await start({ maxUnauthenticatedPerAddress: 100, maxUnauthenticated: 4 });
    const ok = await Promise.all(
      ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5'].map((a) => idleTcp(srv.port, a)),
    );
    await until(() => srv.unauthenticatedCount === 4);
    const past = await idleTcp(srv.port, '127.0.0.6');
    past.resume();
    await until(() => isClosed(past));
    expect(refusals[0]).toBe('limit-total');
    expect(ok.some(isClosed)).toBe(false);
  });

  it('an authenticated session stops counting once upgraded', async () => {
    const { srv, refusals } = await start({ maxUnauthenticatedPerAddress: 1, maxUnauthenticated: 1 });
    const sessions: Session[] = [];
    for (let i = 0; i < 4; i++) sessions.push(await connectSession(srv.url, gwOpts()));
    expect(sessions.every((s) => s.isOpen)).toBe(true);
    expect(srv.unauthenticatedCount).toBe(0);
    expect(refusals).toEqual([]);
    for (const s of sessions) s.close();
  });

  it('an enrollment session counts for its whole life: exactly the limit, then one past it is refused', async () => {
    const { srv, refusals } = await start(
      { maxUnauthenticatedPerAddress: 2, maxUnauthenticated: 10 },
      { mode: 'enrollment' },
    );
    const url = srv.anonymousUrl!;
    const a = await connectAnonymousSession(url, { caPem: pki.ca.certPem, heartbeat: false });
    const b = await connectAnonymousSession(url, { caPem: pki.ca.certPem, heartbeat: false });
    await expect(
      connectAnonymousSession(url, { caPem: pki.ca.certPem, heartbeat: false }),
    ).rejects.toBeTruthy();
    expect(refusals[0]).toBe('limit-address');
    a.close();
    await until(() => srv.unauthenticatedCount === 1);
    const c = await connectAnonymousSession(url, { caPem: pki.ca.certPem, heartbeat: false });
    expect(c.isOpen && b.isOpen).toBe(true);
    b.close();
    c.close();
  });
});

describe('deadlines', () => {
  it('a connection that finishes TLS but never upgrades is closed at upgradeTimeoutMs (upgrade-timeout)', async () => {
    const { srv, refusals } = await start({ upgradeTimeoutMs: 300 });
    const t0 = Date.now();
    const sock = tls.connect({
      host: '127.0.0.1',
      port: srv.port,
      ca: pki.ca.certPem,
      cert: pki.gw.certPem,
      key: pki.gw.keyPem,
      servername: 'localhost',
    });
    await new Promise<void>((r) => sock.once('secureConnect', () => r()));
    sock.on('error', () => {});
    const closedAt = await new Promise<number>((r) => sock.once('close', () => r(Date.now())));
    expect(closedAt - t0).toBeGreaterThanOrEqual(250);
    expect(closedAt - t0).toBeLessThan(2500);
    expect(refusals).toContain('upgrade-timeout');
    await until(() => srv.unauthenticatedCount === 0);
  });

  it('a connection that upgrades before upgradeTimeoutMs is kept past it', async () => {
    const { srv, refusals } = await start({ upgradeTimeoutMs: 300, firstFrameTimeoutMs: 60_000 });
    const s = await connectSession(srv.url, gwOpts());
    await sleep(500);
    expect(s.isOpen).toBe(true);
    expect(refusals).toEqual([]);
    s.close();
  });

  it('a session that sends no frame within firstFrameTimeoutMs is closed with 4003', async () => {
    const { srv, refusals } = await start({ firstFrameTimeoutMs: 300 });
    const s = await connectSession(srv.url, gwOpts());
    const [code] = await waitFor<number>(s, 'close');
    expect(code).toBe(CloseCode.FIRST_FRAME_TIMEOUT);
    expect(refusals).toContain('first-frame-timeout');
  });

  it('a session whose first frame comes before firstFrameTimeoutMs is kept past it', async () => {
    const { srv } = await start({ firstFrameTimeoutMs: 300 });
    const accepted = waitFor<Session>(srv, 'session');
    const s = await connectSession(srv.url, gwOpts());
    await accepted;
    await sleep(150);
    s.send(Buffer.from([1]));
    await sleep(400);
    expect(s.isOpen).toBe(true);
    s.close();
  });
});

describe('TLS key exchange: X25519 and P-256 only', () => {
  const handshake = (port: number, ecdhCurve: string) =>
    new Promise<string>((resolve, reject) => {
      const sock = tls.connect({
        host: '127.0.0.1',
        port,
        ca: pki.ca.certPem,
        cert: pki.gw.certPem,
        key: pki.gw.keyPem,
        servername: 'localhost',
        ecdhCurve,
        minVersion: 'TLSv1.3',
      });
      sockets.push(sock);
      sock.once('secureConnect', () =>
        resolve(String((sock.getEphemeralKeyInfo() as { name?: string } | null)?.name ?? '')),
      );
      sock.once('error', reject);
    });

  it.each([
    ['X25519', 'X25519'],
    ['P-256', 'prime256v1'],
  ])('accepts %s', async (curve, name) => {
    const { srv } = await start({});
    expect(await handshake(srv.port, curve)).toBe(name);
  });

  it.each(['ffdhe2048', 'ffdhe3072', 'X448', 'P-384'])(
    'refuses a client that offers only %s',
    async (curve) => {
      const { srv } = await start({});
      await expect(handshake(srv.port, curve)).rejects.toBeTruthy();
    },
  );
});
