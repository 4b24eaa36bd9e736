import { PassThrough } from 'node:stream';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { connectSession } from '../../src/transport/connect-session.js';
import { isTransportError } from '../../src/transport/errors.js';
import { MessageSocket } from '../../src/transport/message-socket.js';
import { SecureServer } from '../../src/transport/secure-server.js';
import type { Session } from '../../src/transport/session.js';
import { nextTunnelId } from '../../src/transport/tunnel-frames.js';
import { tunnelMuxFor } from '../../src/transport/tunnel-mux.js';
import { type RelayTapInfo, TunnelRelay } from '../../src/transport/tunnel-relay.js';
import type { TunnelStream } from '../../src/transport/tunnel-stream.js';
import {
  acceptTunnelTls,
  openTunnelTls,
  type TunnelTlsSocket,
  tunnelTlsContext,
} from '../../src/transport/tunnel-tls.js';
import { type Creds, expiredPne, makePki, type Pki, waitFor } from './fixtures.js';

const MARKER = 'PLAINTEXT-MARKER-7f3a';
/** The server's whole-accept deadline in these tests (the default is 10 s). */
const ACCEPT_TIMEOUT_MS = 3000;
const revokedInTunnel = new Set<string>();

interface World {
  pki: Pki;
  server: SecureServer;
  gwServer: SecureServer;
  gwUp: Session;
  relay: TunnelRelay;
  serverTunnels: TunnelTlsSocket[];
  serverTunnelErrors: unknown[];
  chunks: { data: Buffer; info: RelayTapInfo }[];
  tamper: { on: boolean };
}

let w: World;

beforeAll(async () => {
  const pki = await makePki();
  const serverTunnels: TunnelTlsSocket[] = [];
  const serverTunnelErrors: unknown[] = [];
  // One TLS context for every tunnel, as the CPNS Server keeps it (src/server/pne-tunnel.ts).
  const context = tunnelTlsContext({ ...pki.server, caPem: pki.ca.certPem });
  const server = new SecureServer({
    certPem: pki.server.certPem,
    keyPem: pki.server.keyPem,
    caPem: pki.ca.certPem,
    allowedRoles: ['gw'],
    heartbeat: false,
  });
  // Server role: accept tunnels on GW sessions, run TLS over them, echo messages back prefixed.
  server.on('session', (gwSession: Session) => {
    tunnelMuxFor(gwSession).on('tunnel', (stream: TunnelStream) => {
      acceptTunnelTls(stream, {
        ...pki.server,
        context,
        isRevoked: (id) => revokedInTunnel.has(id),
        timeoutMs: ACCEPT_TIMEOUT_MS,
      }).then(
        (t) => {
          serverTunnels.push(t);
          const ms = new MessageSocket(t.socket);
          ms.on('message', (m: Buffer) => ms.send(Buffer.concat([Buffer.from('echo:'), m])));
        },
        (e) => serverTunnelErrors.push(e),
      );
    });
  });
  await server.listen();

  const gwUp = await connectSession(server.url, {
    ...pki.gw,
    expectedServerIdentity: pki.server.identity,
    heartbeat: false,
  });
  const chunks: World['chunks'] = [];
  const tamper = { on: false };
  const relay = new TunnelRelay(gwUp, {
    tap: (data, info) => {
      chunks.push({ data: Buffer.from(data), info });
      if (tamper.on && info.direction === 'down' && data[0] === 0x17) {
        tamper.on = false;
        const altered = Buffer.from(data);
        altered[altered.length - 1]! ^= 0x01;
        return altered;
      }
      return undefined;
    },
  });
  const gwServer = new SecureServer({
    certPem: pki.gw.certPem,
    keyPem: pki.gw.keyPem,
    caPem: pki.ca.certPem,
    allowedRoles: ['pne'],
    heartbeat: false,
  });
  gwServer.on('session', (pneSession: Session) => relay.attach(pneSession));
  await gwServer.listen();
  w = { pki, server, gwServer, gwUp, relay, serverTunnels, serverTunnelErrors, chunks, tamper };
});

afterAll(async () => {
  await w.gwServer.close(100);
  w.gwUp.close();
  await w.server.close(100);
});

async function pneSession(c: Creds): Promise<Session> {
  return connectSession(w.gwServer.url, {
    ...c,
    caPem: w.pki.ca.certPem,
    expectedServerRole: 'gw',
    heartbeat: false,
  });
}

function nextMessage(ms: MessageSocket, timeoutMs = 3000): Promise<Buffer> {
  return waitFor<Buffer>(ms, 'message', timeoutMs).then((a) => a[0]!);
}

describe('PNE ↔ server TLS tunnelled through the GW', () => {
  // Every test closes its PNE session: the relay must not keep routes of closed sessions.
  afterEach(async () => {
    await vi.waitFor(() => expect(w.relay.size).toBe(0), { timeout: 2000 });
  });
  it('works both directions with mutual authentication end to end', async () => {
    const before = w.serverTunnels.length;
    w.chunks.length = 0;
    const sess = await pneSession(w.pki.pne);
    const t = await openTunnelTls(sess, { ...w.pki.pne, expectedServerIdentity: w.pki.server.identity });
    expect(t.peer.identity).toBe(w.pki.server.identity);
    expect(t.socket.getProtocol()).toBe('TLSv1.3');
    const ms = new MessageSocket(t.socket);
    ms.send(Buffer.from(MARKER));
    expect((await nextMessage(ms)).toString()).toBe(`echo:${MARKER}`);
    // A bigger message, spanning several TLS records and tunnel frames.
    const big = Buffer.alloc(200_000, 0x61);
    Buffer.from(MARKER).copy(big, 100_000);
    ms.send(big);
    const back = await nextMessage(ms);
    expect(back.length).toBe(big.length + 5);
    expect(back.subarray(5).equals(big)).toBe(true);

    // The server learnt the PNE identity from the PNE's own certificate inside the tunnel.
    const st = w.serverTunnels[before]!;
    expect(st.peer.identity).toBe(w.pki.pne.identity);
    expect(st.peer.role).toBe('pne');

    // The GW saw only TLS records: no plaintext anywhere, and each direction's byte stream parses as a
    // sequence of TLS records (type, legacy version 0x0303, length) starting with a handshake record.
    const mine = w.chunks; // reset at the start of this test: only this tunnel's traffic
    const all = Buffer.concat(mine.map((c) => c.data));
    expect(all.includes(Buffer.from(MARKER))).toBe(false);
    for (const c of mine) expect(c.data.includes(Buffer.from(MARKER))).toBe(false);
    for (const dir of ['up', 'down'] as const) {
      const chunks = mine.filter((c) => c.info.direction === dir);
      expect(chunks.length).toBeGreaterThan(0);
      expect(chunks[0]!.data[0]).toBe(0x16); // ClientHello / ServerHello
      const bytes = Buffer.concat(chunks.map((c) => c.data));
      const types = new Set<number>();
      let off = 0;
      while (off < bytes.length) {
        const type = bytes[off]!;
        expect([0x14, 0x15, 0x16, 0x17]).toContain(type);
        expect([0x0301, 0x0303]).toContain(bytes.readUInt16BE(off + 1)); // 0x0301 only on the ClientHello
        types.add(type);
        off += 5 + bytes.readUInt16BE(off + 3);
      }
      expect(off).toBe(bytes.length);
      expect(types.has(0x17)).toBe(true); // application data is encrypted records
    }
    ms.close();
    sess.close();
  });

  it('a GW that alters one relayed byte breaks the TLS connection; the altered data is never delivered', async () => {
    const sess = await pneSession(w.pki.pne2);
    const t = await openTunnelTls(sess, { ...w.pki.pne2 });
    const ms = new MessageSocket(t.socket);
    ms.send(Buffer.from('warm-up'));
    expect((await nextMessage(ms)).toString()).toBe('echo:warm-up');
    const got: Buffer[] = [];
    ms.on('message', (m: Buffer) => got.push(m));
    const closed = waitFor<Error | undefined>(ms, 'close');
    w.tamper.on = true;
    ms.send(Buffer.from('tampered?'));
    const [err] = await closed;
    expect(err).toBeDefined();
    expect(String((err as { code?: string }).code)).toMatch(/DECRYPTION|BAD_RECORD_MAC|SSL/);
    expect(got).toHaveLength(0);
    sess.close();
  });

  it('the server refuses a tunnel whose inner certificate is not from the CPNS CA', async () => {
    const sess = await pneSession(w.pki.pne);
    const errs = w.serverTunnelErrors.length;
    await expect(openTunnelTls(sess, { ...w.pki.foreign })).rejects.toSatisfy((e) => isTransportError(e));
    await new Promise((r) => setTimeout(r, 50));
    expect(w.serverTunnelErrors.length).toBe(errs + 1);
    sess.close();
  });

  it('the server refuses a tunnel whose inner certificate is from the CPNS CA but expired', async () => {
    const sess = await pneSession(w.pki.pne);
    const errs = w.serverTunnelErrors.length;
    const expired = await expiredPne(w.pki.ca);
    await expect(openTunnelTls(sess, { ...expired, caPem: w.pki.ca.certPem })).rejects.toSatisfy((e) =>
      isTransportError(e, 'NOT_AUTHENTICATED'),
    );
    await vi.waitFor(() => expect(w.serverTunnelErrors.length).toBe(errs + 1), { timeout: 2000 });
    expect(w.serverTunnelErrors.at(-1)).toSatisfy((e) => isTransportError(e, 'NOT_AUTHENTICATED'));
    sess.close();
  });

  it('the server refuses tunnel TLS without a client certificate', async () => {
    const sess = await pneSession(w.pki.pne);
    const errs = w.serverTunnelErrors.length;
    const socket = tls.connect({
      socket: tunnelMuxFor(sess).open(),
      ca: w.pki.ca.certPem,
      minVersion: 'TLSv1.3',
      checkServerIdentity: () => undefined,
    });
    socket.on('error', () => {});
    // TLS 1.3: the client finishes before the server has seen the (missing) certificate; no acceptance byte ever.
    const first = await new Promise<string>((resolve) => {
      socket.once('data', (d: Buffer) => resolve(`data ${d[0]}`));
      socket.once('close', () => resolve('closed'));
    });
    expect(first).toBe('closed');
    await vi.waitFor(() => expect(w.serverTunnelErrors.length).toBe(errs + 1), { timeout: 2000 });
    expect(w.serverTunnelErrors.at(-1)).toSatisfy((e) => isTransportError(e, 'TLS_REFUSED'));
    sess.close();
  });

  it('the server closes a tunnel that never speaks once its accept deadline is past', async () => {
    const sess = await pneSession(w.pki.pne);
    const errs = w.serverTunnelErrors.length;
    const silent = tunnelMuxFor(sess).open();
    silent.resume(); // reads (nothing comes), so the end of the stream is seen
    const t0 = Date.now();
    await new Promise<void>((resolve) => silent.once('close', () => resolve()));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(ACCEPT_TIMEOUT_MS - 100);
    await vi.waitFor(() => expect(w.serverTunnelErrors.length).toBe(errs + 1), { timeout: 2000 });
    expect(w.serverTunnelErrors.at(-1)).toSatisfy((e) => isTransportError(e, 'TIMEOUT'));
    sess.close();
  }, 15_000);

  it('a revoked PNE is refused inside the tunnel with a typed error', async () => {
    const sess = await pneSession(w.pki.pne2);
    revokedInTunnel.add(w.pki.pne2.identity);
    try {
      await expect(openTunnelTls(sess, { ...w.pki.pne2 })).rejects.toSatisfy((e) =>
        isTransportError(e, 'REVOKED'),
      );
    } finally {
      revokedInTunnel.delete(w.pki.pne2.identity);
      sess.close();
    }
  });

  it('a PNE refuses a tunnel peer that is not the expected server', async () => {
    const sess = await pneSession(w.pki.pne);
    await expect(
      openTunnelTls(sess, { ...w.pki.pne, expectedServerIdentity: 'urn:cpns:server:elsewhere' }),
    ).rejects.toSatisfy((e) => isTransportError(e, 'PEER_IDENTITY_MISMATCH'));
    sess.close();
  });

  // A finite-field exchange costs the server far more than the client: inside the tunnel as on the sessions,
  // only X25519 / P-256 (docs/transport.md). A client that offers nothing else gets no handshake.
  it.each(['ffdhe2048', 'X448'])(
    'the server refuses tunnel TLS offering only %s; X25519 works',
    async (curve) => {
      const sess = await pneSession(w.pki.pne);
      const errs = w.serverTunnelErrors.length;
      const socket = tls.connect({
        socket: tunnelMuxFor(sess).open(),
        cert: w.pki.pne.certPem,
        key: w.pki.pne.keyPem,
        ca: w.pki.ca.certPem,
        minVersion: 'TLSv1.3',
        ecdhCurve: curve,
        rejectUnauthorized: false,
        checkServerIdentity: () => undefined,
      });
      const outcome = await new Promise<string>((resolve) => {
        socket.once('secureConnect', () => resolve('connected'));
        socket.once('error', () => resolve('refused'));
        socket.once('close', () => resolve('refused'));
      });
      socket.destroy();
      expect(outcome).toBe('refused');
      await vi.waitFor(() => expect(w.serverTunnelErrors.length).toBe(errs + 1), { timeout: 2000 });
      const ok = await openTunnelTls(sess, { ...w.pki.pne });
      expect(ok.socket.getProtocol()).toBe('TLSv1.3');
      sess.close();
    },
  );

  it('closing the PNE session frees the relay routes', async () => {
    const sess = await pneSession(w.pki.pne);
    const t = await openTunnelTls(sess, { ...w.pki.pne });
    expect(w.relay.size).toBeGreaterThan(0);
    const done = waitFor(t.socket, 'close');
    sess.close();
    await done; // the PNE's tunnel TLS socket ends with its session
    await vi.waitFor(() => expect(w.relay.size).toBe(0), { timeout: 2000 });
  });
});

describe('tunnel bounded buffering', () => {
  it('resets a tunnel whose receiver does not read beyond maxBufferedBytes', async () => {
    const pki = w.pki;
    const srv = new SecureServer({ ...pki.gw, heartbeat: false });
    await srv.listen();
    const accepted = waitFor<Session>(srv, 'session');
    const client = await connectSession(srv.url, { ...pki.pne, expectedServerRole: 'gw', heartbeat: false });
    const [s] = await accepted;
    const serverMux = tunnelMuxFor(s!, { maxBufferedBytes: 64 * 1024 });
    const incoming = waitFor<TunnelStream>(serverMux, 'tunnel');
    const stream = tunnelMuxFor(client).open();
    const [remote] = await incoming;
    // The receiver never reads: its buffer grows until the bound, then the tunnel is reset (both ends close).
    const remoteClosed = waitFor(remote!, 'close');
    const localClosed = waitFor(stream, 'close');
    stream.write(Buffer.alloc(100 * 1024, 1));
    await remoteClosed;
    await localClosed;
    expect(isTransportError(remote!.resetReason, 'TUNNEL_OVERFLOW')).toBe(true);
    expect(isTransportError(stream.resetReason, 'CLOSED')).toBe(true);
    expect(serverMux.size).toBe(0);
    client.close();
    await srv.close(100);
  });
});

describe('MessageSocket', () => {
  it('reassembles messages split at every byte and joined in one chunk', async () => {
    const pipe = new PassThrough();
    const ms = new MessageSocket(pipe);
    const got: string[] = [];
    ms.on('message', (m: Buffer) => got.push(m.toString()));
    const frame = (s: string) => {
      const b = Buffer.from(s);
      const h = Buffer.alloc(4);
      h.writeUInt32BE(b.length);
      return Buffer.concat([h, b]);
    };
    for (const byte of frame('hello')) pipe.write(Buffer.from([byte]));
    pipe.write(Buffer.concat([frame('a'), frame(''), frame('bc')]));
    await new Promise((r) => setImmediate(r));
    expect(got).toEqual(['hello', 'a', '', 'bc']);
  });

  it('closes with FRAME_TOO_LARGE on a length over the bound, before buffering it', async () => {
    const pipe = new PassThrough();
    const ms = new MessageSocket(pipe, { maxMessage: 16 });
    const closed = waitFor<Error>(ms, 'close');
    pipe.write(Buffer.from([0, 0, 0, 17]));
    expect(isTransportError((await closed)[0], 'FRAME_TOO_LARGE')).toBe(true);
    expect(() => new MessageSocket(new PassThrough(), { maxMessage: 4 }).send(Buffer.alloc(5))).toThrow(
      expect.objectContaining({ code: 'FRAME_TOO_LARGE' }),
    );
  });
});

describe('tunnel ids', () => {
  it("step by 2 on their side and wrap to the side's first id past 2^32 - 1", () => {
    expect(nextTunnelId(1)).toBe(3);
    expect(nextTunnelId(2)).toBe(4);
    expect(nextTunnelId(0xffffffff)).toBe(1);
    expect(nextTunnelId(0xfffffffe)).toBe(2);
    expect(nextTunnelId(0xfffffffd)).toBe(0xffffffff);
  });
});
