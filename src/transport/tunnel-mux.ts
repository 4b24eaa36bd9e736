/**
 * The tunnel ends of one Session, on the PNE and on the server (docs/transport.md "The tunnel"): opens tunnels,
 * accepts the peer's, and routes each tunnel frame to its TunnelStream.
 */
import { EventEmitter } from 'node:events';
import { TransportError } from './errors.js';
import { encodeFrame, type Frame, TunnelCloseReason } from './framing.js';
import { DEFAULT_MAX_TUNNELS_PER_SESSION } from './limits.js';
import type { Session } from './session.js';
import { nextTunnelId, sendTunnelClose, tunnelFrameOf } from './tunnel-frames.js';
import { TunnelStream, type TunnelStreamOptions } from './tunnel-stream.js';

export interface TunnelMuxOptions extends TunnelStreamOptions {
  /** Open tunnels allowed on this session (both directions). Default 64. */
  maxTunnels?: number;
}

/**
 * Terminates tunnels on one session. It listens to the session's frames and handles tunnel kinds only; other
 * kinds are the role layer's. Events: 'tunnel' (stream: TunnelStream) for each tunnel the peer opens; without a
 * listener, incoming opens are refused.
 */
export class TunnelMux extends EventEmitter {
  readonly session: Session;
  readonly #opts: TunnelMuxOptions;
  readonly #streams = new Map<number, TunnelStream>();
  // Ids we allocate have the parity of our side, so both ends can open tunnels without colliding.
  #nextId: number;

  constructor(session: Session, opts: TunnelMuxOptions = {}) {
    super();
    this.session = session;
    this.#opts = opts;
    this.#nextId = session.side === 'client' ? 1 : 2;
    session.on('frame', (buf: Buffer) => {
      const f = tunnelFrameOf(buf, session.maxPayload);
      if (f) this.handleFrame(f);
    });
    session.once('close', () => {
      for (const s of [...this.#streams.values()]) s.remoteClose(TunnelCloseReason.ERROR);
    });
  }

  get size(): number {
    return this.#streams.size;
  }

  /** Opens a tunnel to the peer; `meta` is opaque (the relay may use it to pick a destination). */
  open(meta: Uint8Array = new Uint8Array(0)): TunnelStream {
    if (this.#streams.size >= (this.#opts.maxTunnels ?? DEFAULT_MAX_TUNNELS_PER_SESSION)) {
      throw new TransportError('TUNNEL_LIMIT', 'too many tunnels on this session');
    }
    if (!this.session.isOpen) throw new TransportError('CLOSED', 'session is closed');
    let id = this.#nextId;
    while (this.#streams.has(id)) id = nextTunnelId(id);
    this.#nextId = nextTunnelId(id);
    const s = this.#add(id, meta);
    this.session.send(encodeFrame({ kind: 'tunnel-open', tunnelId: id, meta }));
    return s;
  }

  /** Routes one decoded tunnel frame; returns false for frames that are not tunnel frames. */
  handleFrame(f: Frame): boolean {
    switch (f.kind) {
      case 'tunnel-open': {
        const limit = this.#opts.maxTunnels ?? DEFAULT_MAX_TUNNELS_PER_SESSION;
        if (this.#streams.has(f.tunnelId)) return true; // duplicate open: ignore, never clobber a live tunnel
        if (this.listenerCount('tunnel') === 0 || this.#streams.size >= limit) {
          sendTunnelClose(this.session, f.tunnelId, TunnelCloseReason.REFUSED);
          return true;
        }
        this.emit('tunnel', this.#add(f.tunnelId, Buffer.from(f.meta)));
        return true;
      }
      case 'tunnel-data': {
        const s = this.#streams.get(f.tunnelId);
        if (s) s.deliver(f.data);
        else sendTunnelClose(this.session, f.tunnelId, TunnelCloseReason.ERROR); // data for no tunnel: tell the peer
        return true;
      }
      case 'tunnel-close':
        this.#streams.get(f.tunnelId)?.remoteClose(f.reason);
        return true;
      default:
        return false;
    }
  }

  #add(id: number, meta: Uint8Array): TunnelStream {
    const s = new TunnelStream(
      this.session,
      id,
      meta,
      () => {
        if (this.#streams.get(id) === s) this.#streams.delete(id);
      },
      this.#opts,
    );
    this.#streams.set(id, s);
    // A stream that ended cleanly in both directions is gone too.
    s.once('close', () => {
      if (this.#streams.get(id) === s) this.#streams.delete(id);
    });
    return s;
  }
}

const muxes = new WeakMap<Session, TunnelMux>();

/** The session's tunnel mux, created (and attached) on first use. */
export function tunnelMuxFor(session: Session, opts?: TunnelMuxOptions): TunnelMux {
  let m = muxes.get(session);
  if (!m) {
    m = new TunnelMux(session, opts);
    muxes.set(session, m);
  }
  return m;
}
