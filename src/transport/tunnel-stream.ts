/**
 * One tunnel end (docs/transport.md "The tunnel"): a Duplex over the frames of one tunnel id on a Session, so
 * node's TLS can run over it end to end. Flow control is bounded buffering: the sender is paced by its own
 * socket (write callbacks), and a receiver that lets more than `maxBufferedBytes` pile up unread resets the
 * tunnel (OVERFLOW) instead of growing memory.
 */
import { Duplex } from 'node:stream';
import { TransportError } from './errors.js';
import { encodeFrame, maxTunnelChunk, TunnelCloseReason } from './framing.js';
import { DEFAULT_TUNNEL_CHUNK_BYTES, DEFAULT_TUNNEL_MAX_BUFFERED_BYTES } from './limits.js';
import type { Session } from './session.js';
import { sendTunnelClose } from './tunnel-frames.js';

export interface TunnelStreamOptions {
  /** Unread bytes tolerated before the tunnel is reset with OVERFLOW. Default 256 KiB. */
  maxBufferedBytes?: number;
  /** Largest data frame sent. Default 64 KiB (capped by the session's maxPayload). */
  chunkSize?: number;
}

/**
 * A Duplex over one tunnel id of a Session. Close is full-duplex: ending either side sends tunnel-close and the
 * peer sees end-of-stream; TLS close_notify on top makes truncation detectable.
 *
 * It never emits 'error': node's TLS-over-Duplex wrapper re-emits errors of the underlying stream on an internal
 * object nobody listens to, which would crash the process. A failed tunnel is destroyed quietly (TLS then sees
 * the close) and the cause is kept in `resetReason`.
 */
export class TunnelStream extends Duplex {
  readonly tunnelId: number;
  readonly meta: Uint8Array;
  readonly session: Session;
  readonly #maxBuffered: number;
  readonly #chunk: number;
  readonly #onGone: () => void;
  #closeSent = false;
  #remoteClosed = false;
  /** Why the tunnel ended abnormally (overflow, reset by peer, session lost); undefined after a clean close. */
  resetReason: Error | undefined;

  constructor(
    session: Session,
    tunnelId: number,
    meta: Uint8Array,
    onGone: () => void,
    o: TunnelStreamOptions,
  ) {
    super({ allowHalfOpen: false });
    this.session = session;
    this.tunnelId = tunnelId;
    this.meta = meta;
    this.#onGone = onGone;
    this.#maxBuffered = o.maxBufferedBytes ?? DEFAULT_TUNNEL_MAX_BUFFERED_BYTES;
    this.#chunk = Math.max(
      1,
      Math.min(o.chunkSize ?? DEFAULT_TUNNEL_CHUNK_BYTES, maxTunnelChunk(session.maxPayload)),
    );
  }

  /** Called by the mux for each data frame of this tunnel. */
  deliver(data: Uint8Array): void {
    if (this.#remoteClosed || this.destroyed) return;
    // Copy: the frame is a view into the WebSocket message buffer, which we must not pin.
    this.push(Buffer.from(data));
    if (this.readableLength > this.#maxBuffered) {
      this.#sendClose(TunnelCloseReason.OVERFLOW);
      this.destroy(new TransportError('TUNNEL_OVERFLOW', 'tunnel receive buffer exceeded'));
    }
  }

  /** Called by the mux when the peer closed the tunnel (or the session ended). */
  remoteClose(reason: number): void {
    if (this.#remoteClosed) return;
    this.#remoteClosed = true;
    this.#closeSent = true; // no need to answer a close with a close
    if (reason === TunnelCloseReason.NORMAL) {
      this.push(null);
    } else {
      this.destroy(new TransportError('CLOSED', `tunnel reset by peer (${reason})`));
    }
  }

  override _read(): void {
    // Push-based: data arrives as frames. Bounded by the overflow check in deliver().
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.#remoteClosed) {
      cb(); // the peer is gone; TLS close_notify racing the peer's close is dropped, not an error
      return;
    }
    if (!this.session.isOpen) {
      cb();
      this.destroy(new TransportError('CLOSED', 'session is closed'));
      return;
    }
    let off = 0;
    let frameErr: Error | undefined;
    while (off < chunk.length) {
      const piece = chunk.subarray(off, off + this.#chunk);
      off += piece.length;
      const last = off >= chunk.length;
      const frame = encodeFrame(
        { kind: 'tunnel-data', tunnelId: this.tunnelId, data: piece },
        { maxFrame: this.session.maxPayload },
      );
      // The callback of the last frame paces the writer: the Writable buffers (highWaterMark) meanwhile.
      this.session.send(frame, (err) => {
        if (err) frameErr ??= err;
        if (!last) return;
        cb();
        if (frameErr) this.destroy(frameErr);
      });
    }
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.#sendClose(TunnelCloseReason.NORMAL);
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (err) this.resetReason ??= err;
    this.#sendClose(err ? TunnelCloseReason.ERROR : TunnelCloseReason.NORMAL);
    this.#onGone();
    cb(null); // swallow: see the class comment
  }

  #sendClose(reason: number): void {
    if (this.#closeSent) return;
    this.#closeSent = true;
    if (this.session.isOpen) sendTunnelClose(this.session, this.tunnelId, reason);
  }
}
