import { encode } from 'cbor-x';
import {
  type ControlMessage,
  type ControlMessageInit,
  decodeMessage,
  encodeMessage,
} from '../../src/core/codec/index.js';
import type { Credentials } from '../../src/protocol/enroll-client.js';
import { connectSession } from '../../src/transport/connect-session.js';
import { decodeFrame, encodeFrame } from '../../src/transport/framing.js';
import type { Session } from '../../src/transport/session.js';
import { openTunnelTls } from '../../src/transport/tunnel-tls.js';

/** A raw authenticated client: sends hand-made frames, collects decoded control replies. */
export class RawPeer {
  readonly got: ControlMessage[] = [];
  readonly groups: Buffer[] = [];
  #id = 1000;
  constructor(readonly session: Session) {
    session.on('frame', (buf: Buffer) => {
      try {
        const f = decodeFrame(buf, { maxFrame: Number.POSITIVE_INFINITY });
        if (f.kind === 'control') this.got.push(decodeMessage(f.payload));
        if (f.kind === 'group') this.groups.push(Buffer.from(f.payload));
      } catch {}
    });
  }
  raw(bytes: Uint8Array): void {
    this.session.send(bytes);
  }
  control(msg: ControlMessageInit): number {
    const id = this.#id++;
    this.session.send(
      encodeFrame({ kind: 'control', payload: encodeMessage({ ...msg, id } as ControlMessageInit) }),
    );
    return id;
  }
  /** CBOR of an arbitrary object as a control frame (bypasses our encoder's schema check). */
  cbor(obj: unknown): void {
    this.session.send(encodeFrame({ kind: 'control', payload: encode(obj) }));
  }
  group(payload: Uint8Array): void {
    this.session.send(encodeFrame({ kind: 'group', payload }));
  }
  /** Waits for the next message matching `pred` that arrived after index `from`. */
  async next(pred: (m: ControlMessage) => boolean, from = 0, timeoutMs = 3000): Promise<ControlMessage> {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      const m = this.got.slice(from).find(pred);
      if (m) return m;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error('timeout waiting for a reply');
  }
  /** Sends something, returns the code of the next `error` reply. */
  async errorOf(send: () => void): Promise<string> {
    const from = this.got.length;
    send();
    const m = await this.next((x) => x.t === 'error', from);
    return m.t === 'error' ? m.code : '';
  }
}

/**
 * A PNE that attaches and proves it is behind its GW (the end-to-end tunnel, rule A1), so the server names it as a
 * target of its SGs' keys, but never acks a key unless told to (`ack`): the member a GW waits for.
 */
export async function silentPne(
  gwUrl: string,
  creds: Credentials,
): Promise<{ peer: RawPeer; identity: string; ack(sgId: string, epoch: number): void; close(): void }> {
  const session = await connectSession(gwUrl, {
    caPem: creds.caPem,
    certPem: creds.certPem,
    keyPem: creds.keyPem,
    expectedServerRole: 'gw',
    heartbeat: false,
  });
  const peer = new RawPeer(session);
  const id = peer.control({ t: 'pne.attach', pneId: creds.identity, media: [] });
  await peer.next((m) => m.t === 'ok' && m.ref === id);
  const tunnel = await openTunnelTls(session, creds);
  return {
    peer,
    identity: creds.identity,
    ack: (sgId, epoch) => peer.control({ t: 'key.ack', sgId, epoch, method: 'unicast' }),
    close: () => {
      tunnel.socket.destroy();
      session.close(1000, 'test done');
    },
  };
}
