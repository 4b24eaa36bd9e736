import {
  type ControlMessage,
  type ControlMessageInit,
  decodeMessage,
  encodeMessage,
} from '../core/codec/index.js';
import type { Credentials } from '../protocol/enroll-client.js';
import { BroadcastKeyListener, type GkdkIssue } from '../protocol/index.js';
import { connectSession } from '../transport/connect-session.js';
import { decodeFrame, encodeFrame } from '../transport/framing.js';
import type { Session } from '../transport/session.js';
import { openTunnelTls, type TunnelTlsSocket } from '../transport/tunnel-tls.js';

/**
 * A simulated PNE endpoint for the rekey benchmark (docs/benchmarks.md): a real mutually authenticated TLS session to
 * its real PN GW, speaking the real control protocol (pne.attach, key.deliver -> key.ack, gkdk.issue ->
 * gkdk.ack, broadcast datagrams through BroadcastKeyListener), with the end-to-end tunnel to the server that
 * proves it is behind its GW (docs/protocol.md rule A1) — but without the group messaging of the full PneClient,
 * so thousands fit in one process.
 */
export class SimPne {
  readonly identity: string;
  /** epoch -> time (performance.now) the key of that epoch was acked, per SG. */
  readonly acked = new Map<string, Map<number, number>>();
  /** Bytes of key deliveries received by unicast (whole frames). */
  unicastBytes = 0;
  readonly #session: Session;
  readonly #media: string[];
  #listener: BroadcastKeyListener | undefined;
  #tunnel: TunnelTlsSocket | undefined;
  #nextId = 1;
  readonly #epochs = new Map<string, number>();
  readonly #waiters: (() => void)[] = [];

  private constructor(identity: string, session: Session, media: string[]) {
    this.identity = identity;
    this.#session = session;
    this.#media = media;
    session.on('frame', (buf: Buffer) => this.#onFrame(buf));
  }

  static async connect(gwUrl: string, creds: Credentials, media: string[] = []): Promise<SimPne> {
    const session = await connectSession(gwUrl, {
      caPem: creds.caPem,
      certPem: creds.certPem,
      keyPem: creds.keyPem,
      expectedServerRole: 'gw',
      heartbeat: false,
    });
    const sim = new SimPne(creds.identity, session, media);
    sim.#send({ t: 'pne.attach', pneId: creds.identity, media: media as ('wifi' | 'bt')[] }, true);
    sim.#tunnel = await openTunnelTls(session, creds);
    return sim;
  }

  epoch(sgId: string): number | undefined {
    return this.#epochs.get(sgId);
  }

  /** Resolves once this PNE holds `epoch` of `sgId`. */
  async waitEpoch(sgId: string, epoch: number): Promise<void> {
    while ((this.#epochs.get(sgId) ?? 0) < epoch) await new Promise<void>((r) => this.#waiters.push(r));
  }

  async close(): Promise<void> {
    await this.#listener?.close();
    this.#tunnel?.socket.destroy();
    this.#session.close(1000, 'bench done');
  }

  /**
   * Acks go without an id, as the PNE SDK sends them (src/pne/keys.ts, broadcast.ts): the GW then sends no `ok`
   * back, which with an id would add a frame each way per member to what the bench measures.
   */
  #send(msg: ControlMessageInit, withId = false): void {
    const payload = encodeMessage((withId ? { ...msg, id: this.#nextId++ } : msg) as ControlMessageInit);
    this.#session.send(encodeFrame({ kind: 'control', payload }));
  }

  #got(sgId: string, epoch: number, method: 'unicast' | 'broadcast'): void {
    if ((this.#epochs.get(sgId) ?? 0) >= epoch) return;
    this.#epochs.set(sgId, epoch);
    const m = this.acked.get(sgId) ?? new Map<number, number>();
    this.acked.set(sgId, m);
    this.#send({ t: 'key.ack', sgId, epoch, method });
    m.set(epoch, performance.now());
    for (const w of this.#waiters.splice(0)) w();
  }

  #onFrame(buf: Buffer): void {
    const f = decodeFrame(buf);
    if (f.kind !== 'control') return;
    let msg: ControlMessage;
    try {
      msg = decodeMessage(f.payload);
    } catch {
      return;
    }
    if (msg.t === 'key.deliver') {
      this.unicastBytes += buf.length;
      this.#got(msg.sgId, msg.epoch, 'unicast');
    } else if (msg.t === 'gkdk.issue') {
      void this.#onGkdk(msg as unknown as GkdkIssue & { treeId: string; treeVersion: number });
    }
  }

  async #onGkdk(issue: GkdkIssue): Promise<void> {
    if (!this.#listener) {
      this.#listener = await BroadcastKeyListener.open({
        media: issue.media,
        supported: this.#media,
        currentEpoch: (sg) => this.#epochs.get(sg),
      });
      this.#listener.on('key', (k: { sgId: string; epoch: number }) =>
        this.#got(k.sgId, k.epoch, 'broadcast'),
      );
    }
    this.#listener.setGkdk(issue);
    this.#send({ t: 'gkdk.ack', treeId: issue.treeId, treeVersion: issue.treeVersion });
  }
}
