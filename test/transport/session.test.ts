import tls from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { backoffDelay } from '../../src/transport/backoff.js';
import { connectAnonymousSession, connectSession } from '../../src/transport/connect-session.js';
import { isTransportError } from '../../src/transport/errors.js';
import { ReconnectingClient } from '../../src/transport/reconnecting-client.js';
import { SecureServer, type SecureServerOptions } from '../../src/transport/secure-server.js';
import { CloseCode, type Session } from '../../src/transport/session.js';
import { refusalErrorCode } from '../../src/transport/upgrade-admission.js';
import { makePki, type Pki, waitFor } from './fixtures.js';

let pki: Pki;
const servers: SecureServer[] = [];

beforeAll(async () => {
  pki = await makePki();
});
afterEach(async () => {
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

const clientOpts = (c: { certPem: string; keyPem: string }) => ({
  certPem: c.certPem,
  keyPem: c.keyPem,
  caPem: pki.ca.certPem,
  heartbeat: false as const,
});

function code(e: unknown): string | undefined {
  return isTransportError(e) ? e.code : `not a TransportError: ${String(e)}`;
}

describe('secure sessions: mutual TLS 1.3', () => {
  it('authenticates both ends; identities come from the certificates', async () => {
    const srv = await startServer();
    const accepted = waitFor<Session>(srv, 'session');
    const client = await connectSession(srv.url, {
      ...clientOpts(pki.gw),
      expectedServerIdentity: pki.server.identity,
    });
    const [serverSide] = await accepted;
    expect(serverSide!.identity).toBe(pki.gw.identity);
    expect(serverSide!.role).toBe('gw');
    expect(serverSide!.anonymous).toBe(false);
    expect(serverSide!.remoteAddress).toBe('127.0.0.1');
    expect(client.identity).toBe(pki.server.identity);
    expect(srv.sessionsOf(pki.gw.identity)).toHaveLength(1);

    const got = waitFor<Buffer>(serverSide!, 'frame');
    client.send(Buffer.from([1, 2, 3]));
    expect([...(await got)[0]!]).toEqual([1, 2, 3]);
    const back = waitFor<Buffer>(client, 'frame');
    await serverSide!.sendAsync(Buffer.from([9]));
    expect([...(await back)[0]!]).toEqual([9]);
    client.close();
  });

  it('refuses a client certificate from another CA in the TLS handshake', async () => {
    const srv = await startServer();
    await expect(connectSession(srv.url, clientOpts(pki.foreign))).rejects.toSatisfy(
      (e) => code(e) === 'TLS_REFUSED',
    );
  });

  it('refuses a client without certificate in the handshake; the enrollment listener gives an anonymous session', async () => {
    const srv = await startServer();
    await expect(connectAnonymousSession(srv.url, { caPem: pki.ca.certPem })).rejects.toSatisfy(
      (e) => code(e) === 'TLS_REFUSED',
    );
    expect(srv.anonymousUrl).toBeUndefined();
    const enroll = await startServer({ mode: 'enrollment' });
    expect(enroll.anonymousUrl).toMatch(/\/enroll$/);
    const accepted = waitFor<Session>(enroll, 'session');
    const anon = await connectAnonymousSession(enroll.anonymousUrl!, {
      caPem: pki.ca.certPem,
      expectedServerIdentity: pki.server.identity,
    });
    const [s] = await accepted;
    expect(s!.anonymous).toBe(true);
    expect(s!.identity).toBeNull();
    expect(anon.identity).toBe(pki.server.identity);
    anon.close();
    // A certificate changes nothing there: every enrollment session is anonymous.
    const accepted2 = waitFor<Session>(enroll, 'session');
    const withCert = await connectSession(enroll.anonymousUrl!, clientOpts(pki.gw));
    expect((await accepted2)[0]!.anonymous).toBe(true);
    withCert.close();
  });

  it('refuses a TLS 1.2 client', async () => {
    const srv = await startServer();
    const err = await new Promise<Error>((resolve, reject) => {
      const sock = tls.connect({
        host: '127.0.0.1',
        port: srv.port,
        ca: pki.ca.certPem,
        cert: pki.gw.certPem,
        key: pki.gw.keyPem,
        maxVersion: 'TLSv1.2',
      });
      sock.once('secureConnect', () => reject(new Error('TLS 1.2 handshake succeeded')));
      sock.once('error', resolve);
    });
    expect(String((err as { code?: string }).code ?? err.message)).toMatch(/VERSION|PROTOCOL|ALERT/i);
  });

  it('refuses a revoked identity at connect and closes its open sessions on closeSessionsOf', async () => {
    const revoked = new Set<string>();
    const srv = await startServer({ isRevoked: (id) => revoked.has(id) });
    const accepted = waitFor<Session>(srv, 'session');
    const client = await connectSession(srv.url, clientOpts(pki.gw));
    await accepted;
    const closed = waitFor<unknown>(client, 'close');
    revoked.add(pki.gw.identity);
    expect(srv.closeSessionsOf(pki.gw.identity)).toBe(1);
    const [closeCode] = await closed;
    expect(closeCode).toBe(CloseCode.REVOKED);
    await expect(connectSession(srv.url, clientOpts(pki.gw))).rejects.toSatisfy((e) => code(e) === 'REVOKED');
    // Other identities are unaffected.
    const other = await connectSession(srv.url, clientOpts(pki.pne));
    other.close();
  });

  it('refuses roles not allowed on the endpoint', async () => {
    const srv = await startServer({ allowedRoles: ['gw'] });
    await expect(connectSession(srv.url, clientOpts(pki.pne))).rejects.toSatisfy(
      (e) => code(e) === 'ROLE_REFUSED',
    );
  });

  it('checks the server identity on the client side', async () => {
    const srv = await startServer();
    await expect(
      connectSession(srv.url, { ...clientOpts(pki.gw), expectedServerIdentity: 'urn:cpns:server:other' }),
    ).rejects.toSatisfy((e) => code(e) === 'PEER_IDENTITY_MISMATCH');
    await expect(
      connectSession(srv.url, { ...clientOpts(pki.gw), expectedServerRole: 'gw' }),
    ).rejects.toSatisfy((e) => code(e) === 'PEER_IDENTITY_MISMATCH');
    // A client that pins another CA refuses this server during the TLS handshake.
    const otherCaPem = (await import('../../src/transport/ca.js').then((m) => m.createCa('x'))).certPem;
    // ... typed as such: TLS_REFUSED with field caPem (the CA file is another CA's)
    await expect(connectSession(srv.url, { ...clientOpts(pki.gw), caPem: otherCaPem })).rejects.toSatisfy(
      (e) => code(e) === 'TLS_REFUSED' && (e as { field?: string }).field === 'caPem',
    );
  });

  it('nothing listening is UNREACHABLE, not a TLS failure', async () => {
    const { freePort } = await import('../free-port.js');
    const url = `wss://127.0.0.1:${await freePort()}/cpns`;
    await expect(connectSession(url, clientOpts(pki.gw))).rejects.toSatisfy(
      (e) => code(e) === 'UNREACHABLE' && (e as { field?: string }).field === undefined,
    );
  });

  it('accepts a frame of exactly maxPayload and closes with 1009 on maxPayload + 1', async () => {
    const max = 4096;
    const srv = await startServer({ maxPayload: max });
    const accepted = waitFor<Session>(srv, 'session');
    const client = await connectSession(srv.url, clientOpts(pki.gw));
    const [s] = await accepted;
    const got = waitFor<Buffer>(s!, 'frame');
    client.send(Buffer.alloc(max, 7));
    expect((await got)[0]!.length).toBe(max);
    const closed = waitFor<unknown>(client, 'close');
    const frames: Buffer[] = [];
    s!.on('frame', (f: Buffer) => frames.push(f));
    client.send(Buffer.alloc(max + 1, 7));
    expect((await closed)[0]).toBe(CloseCode.TOO_LARGE);
    expect(frames).toHaveLength(0);
  });

  it('refuses unknown paths, and closes a session that sends a text message', async () => {
    const srv = await startServer();
    await expect(connectSession(srv.url.replace('/cpns', '/other'), clientOpts(pki.gw))).rejects.toSatisfy(
      (e) => code(e) === 'UPGRADE_REFUSED',
    );
    const accepted = waitFor<Session>(srv, 'session');
    const raw = new WebSocket(srv.url, { ca: pki.ca.certPem, cert: pki.gw.certPem, key: pki.gw.keyPem });
    await waitFor(raw, 'open');
    const [s] = await accepted;
    const closed = waitFor<number>(s!, 'close');
    raw.send('hello');
    expect((await closed)[0]).toBe(CloseCode.UNSUPPORTED_DATA);
  });

  it('heartbeats terminate a peer that stops answering pings', async () => {
    const srv = await startServer({ heartbeat: { intervalMs: 50, timeoutMs: 100 } });
    const accepted = waitFor<Session>(srv, 'session');
    // A raw ws client that never answers pings: a dead peer from the server's point of view.
    const dead = new WebSocket(srv.url, {
      ca: pki.ca.certPem,
      cert: pki.gw.certPem,
      key: pki.gw.keyPem,
      autoPong: false,
    });
    dead.on('error', () => {});
    const [s] = await accepted;
    const t0 = Date.now();
    const [closeCode] = await waitFor<number>(s!, 'close', 3000);
    expect(closeCode).toBe(CloseCode.ABNORMAL);
    expect(Date.now() - t0).toBeLessThan(2000);
    dead.terminate();
  });

  it('keeps a live peer (answers pings) open across many heartbeat periods', async () => {
    const srv = await startServer({ heartbeat: { intervalMs: 30, timeoutMs: 100 } });
    const accepted = waitFor<Session>(srv, 'session');
    const client = await connectSession(srv.url, clientOpts(pki.gw));
    const [s] = await accepted;
    await new Promise((r) => setTimeout(r, 300));
    expect(s!.isOpen).toBe(true);
    client.close();
  });
});

describe('ReconnectingClient', () => {
  it('backoff grows exponentially, is capped, and is jittered', () => {
    const o = { initialMs: 100, maxMs: 1000, factor: 2, jitter: 0.5 };
    expect(backoffDelay(0, o, () => 0)).toBe(100);
    expect(backoffDelay(3, o, () => 0)).toBe(800);
    expect(backoffDelay(10, o, () => 0)).toBe(1000);
    expect(backoffDelay(10, o, () => 1)).toBe(500);
    expect(backoffDelay(1000, o, () => 0)).toBe(1000);
  });

  it('reconnects after the server restarts on the same port', async () => {
    const srv = await startServer();
    const port = srv.port;
    const rc = new ReconnectingClient(srv.url, clientOpts(pki.gw), { initialMs: 20, maxMs: 100 });
    const sessions: Session[] = [];
    rc.on('session', (s: Session) => sessions.push(s));
    const first = waitFor<Session>(rc, 'session');
    rc.start();
    await first;
    const down = waitFor<unknown>(rc, 'disconnected');
    await srv.close(100);
    servers.splice(servers.indexOf(srv), 1);
    expect((await down)[0]).toBe(CloseCode.GOING_AWAY);
    // Let it fail against a closed port at least once.
    await waitFor<unknown>(rc, 'connect-error');
    const again = waitFor<Session>(rc, 'session');
    const srv2 = await startServer({ port });
    const serverSide = waitFor<Session>(srv2, 'session');
    await again;
    expect((await serverSide)[0]!.identity).toBe(pki.gw.identity);
    expect(sessions).toHaveLength(2);
    expect(rc.session?.isOpen).toBe(true);
    rc.stop();
  });

  it('stops for good when the identity is revoked', async () => {
    const srv = await startServer({ isRevoked: () => true });
    const rc = new ReconnectingClient(srv.url, clientOpts(pki.gw), { initialMs: 10 });
    const fatal = waitFor<Error>(rc, 'fatal');
    rc.start();
    expect(code((await fatal)[0])).toBe('REVOKED');
    rc.stop();
  });
});

describe('the refusal header a server sends is looked up as data', () => {
  // A hostile server chooses the header text: names on Object.prototype must not come back as codes.
  it.each(['constructor', 'toString', '__proto__', 'hasOwnProperty', 'valueOf', ''])(
    '%j → UPGRADE_REFUSED',
    (h) => {
      expect(refusalErrorCode(h)).toBe('UPGRADE_REFUSED');
    },
  );
  it('a known reason keeps its code', () => {
    expect(refusalErrorCode('revoked')).toBe('REVOKED');
  });
});
