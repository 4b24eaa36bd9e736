/**
 * The GW's part of the end-to-end server ↔ PNE tunnel (docs/transport.md "The tunnel"): it renumbers tunnel ids
 * between the PNE sessions and the server session and copies the ciphertext both ways. It holds no keys, so it
 * cannot read the TLS records, and any byte it altered would fail the record's AEAD at the receiver.
 */
import { encodeFrame, TunnelCloseReason } from './framing.js';
import { DEFAULT_MAX_TUNNELS_PER_PNE } from './limits.js';
import type { Session } from './session.js';
import { nextTunnelId, sendTunnelClose, type TunnelFrame, tunnelFrameOf } from './tunnel-frames.js';

export type RelayDirection = 'up' | 'down';

export interface RelayTapInfo {
  direction: RelayDirection;
  pne: Session;
  pneTunnelId: number;
  upstreamTunnelId: number;
}

export interface TunnelRelayOptions {
  /** Tunnels one PNE session may have open through this GW. Default 8. */
  maxTunnelsPerPne?: number;
  /**
   * Observes every relayed data chunk. For tests: returning bytes replaces the chunk (a GW that tampers), which
   * the TLS peers must detect. Production code leaves it unset.
   */
  tap?: (data: Uint8Array, info: RelayTapInfo) => Uint8Array | undefined;
}

interface Route {
  pne: Session;
  pneTunnelId: number;
  upstreamTunnelId: number;
}

/**
 * Maps (PNE session, PNE tunnel id) ↔ upstream tunnel id and copies tunnel frames both ways without interpreting
 * the bytes. It attaches to the sessions' 'frame' events and handles tunnel kinds only.
 */
export class TunnelRelay {
  #upstream: Session;
  readonly #opts: TunnelRelayOptions;
  readonly #byUpstream = new Map<number, Route>();
  readonly #byPne = new Map<Session, Map<number, Route>>();
  #nextUp: number;
  readonly #onUpstreamFrame = (buf: Buffer): void => {
    const f = tunnelFrameOf(buf, this.#upstream.maxPayload);
    if (f) this.handleUpstream(f);
  };
  readonly #onUpstreamClose = (): void => this.#dropAll();

  constructor(upstream: Session, opts: TunnelRelayOptions = {}) {
    this.#opts = opts;
    this.#upstream = upstream;
    this.#nextUp = upstream.side === 'client' ? 1 : 2;
    this.#listenUpstream();
  }

  get size(): number {
    return this.#byUpstream.size;
  }

  /** After the GW reconnects to the server: tunnels through the old session are dead (their TLS broke with it). */
  setUpstream(upstream: Session): void {
    this.#upstream.off('frame', this.#onUpstreamFrame);
    this.#upstream.off('close', this.#onUpstreamClose);
    this.#dropAll();
    this.#upstream = upstream;
    this.#nextUp = upstream.side === 'client' ? 1 : 2;
    this.#listenUpstream();
  }

  /** Starts relaying the tunnels this PNE session opens. */
  attach(pne: Session): void {
    if (this.#byPne.has(pne)) return;
    this.#byPne.set(pne, new Map());
    pne.on('frame', (buf: Buffer) => {
      const f = tunnelFrameOf(buf, pne.maxPayload);
      if (f) this.handleDownstream(pne, f);
    });
    pne.once('close', () => this.detach(pne));
  }

  /** Closes the PNE's relayed tunnels towards the server and forgets the PNE session. */
  detach(pne: Session): void {
    const routes = this.#byPne.get(pne);
    if (!routes) return;
    this.#byPne.delete(pne);
    for (const r of routes.values()) {
      this.#byUpstream.delete(r.upstreamTunnelId);
      if (this.#upstream.isOpen) sendTunnelClose(this.#upstream, r.upstreamTunnelId, TunnelCloseReason.ERROR);
    }
  }

  /** A tunnel frame from a PNE session. */
  handleDownstream(pne: Session, f: TunnelFrame): void {
    const routes = this.#byPne.get(pne);
    if (!routes) return;
    switch (f.kind) {
      case 'tunnel-open': {
        if (routes.has(f.tunnelId)) return;
        if (
          routes.size >= (this.#opts.maxTunnelsPerPne ?? DEFAULT_MAX_TUNNELS_PER_PNE) ||
          !this.#upstream.isOpen
        ) {
          sendTunnelClose(pne, f.tunnelId, TunnelCloseReason.REFUSED);
          return;
        }
        const up = this.#allocUp();
        const r: Route = { pne, pneTunnelId: f.tunnelId, upstreamTunnelId: up };
        routes.set(f.tunnelId, r);
        this.#byUpstream.set(up, r);
        this.#upstream.send(encodeFrame({ kind: 'tunnel-open', tunnelId: up, meta: f.meta }));
        return;
      }
      case 'tunnel-data': {
        const r = routes.get(f.tunnelId);
        if (!r) {
          sendTunnelClose(pne, f.tunnelId, TunnelCloseReason.ERROR);
          return;
        }
        const data = this.#tap(f.data, 'up', r);
        this.#upstream.send(
          encodeFrame({ kind: 'tunnel-data', tunnelId: r.upstreamTunnelId, data }, { maxFrame: Infinity }),
        );
        return;
      }
      case 'tunnel-close': {
        const r = routes.get(f.tunnelId);
        if (!r) return;
        routes.delete(f.tunnelId);
        this.#byUpstream.delete(r.upstreamTunnelId);
        sendTunnelClose(this.#upstream, r.upstreamTunnelId, f.reason);
        return;
      }
    }
  }

  /** A tunnel frame from the server session. */
  handleUpstream(f: TunnelFrame): void {
    const r = this.#byUpstream.get(f.tunnelId);
    switch (f.kind) {
      case 'tunnel-open':
        // The server does not open tunnels towards PNEs through a GW (yet): refuse.
        sendTunnelClose(this.#upstream, f.tunnelId, TunnelCloseReason.REFUSED);
        return;
      case 'tunnel-data':
        if (!r) {
          sendTunnelClose(this.#upstream, f.tunnelId, TunnelCloseReason.ERROR);
          return;
        }
        r.pne.send(
          encodeFrame(
            { kind: 'tunnel-data', tunnelId: r.pneTunnelId, data: this.#tap(f.data, 'down', r) },
            { maxFrame: Infinity },
          ),
        );
        return;
      case 'tunnel-close':
        if (!r) return;
        this.#byUpstream.delete(f.tunnelId);
        this.#byPne.get(r.pne)?.delete(r.pneTunnelId);
        sendTunnelClose(r.pne, r.pneTunnelId, f.reason);
        return;
    }
  }

  #tap(data: Uint8Array, direction: RelayDirection, r: Route): Uint8Array {
    const tap = this.#opts.tap;
    if (!tap) return data;
    return (
      tap(data, {
        direction,
        pne: r.pne,
        pneTunnelId: r.pneTunnelId,
        upstreamTunnelId: r.upstreamTunnelId,
      }) ?? data
    );
  }

  #allocUp(): number {
    let id = this.#nextUp;
    while (this.#byUpstream.has(id)) id = nextTunnelId(id);
    this.#nextUp = nextTunnelId(id);
    return id;
  }

  #listenUpstream(): void {
    this.#upstream.on('frame', this.#onUpstreamFrame);
    this.#upstream.once('close', this.#onUpstreamClose);
  }

  #dropAll(): void {
    for (const r of this.#byUpstream.values()) {
      if (r.pne.isOpen) sendTunnelClose(r.pne, r.pneTunnelId, TunnelCloseReason.ERROR);
    }
    this.#byUpstream.clear();
    for (const m of this.#byPne.values()) m.clear();
  }
}
