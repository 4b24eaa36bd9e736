/**
 * Messages over the tunnel's TLS socket (docs/transport.md "The tunnel"): TLS gives a byte stream, the roles
 * exchange whole CPNS messages, so each is sent as a u32 length and its bytes.
 */
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { TransportError } from './errors.js';
import { DEFAULT_MAX_TUNNEL_MESSAGE_BYTES } from './limits.js';

export interface MessageSocketOptions {
  /** Largest message accepted or sent. Default 1 MiB. */
  maxMessage?: number;
}

/**
 * u32 big-endian length + bytes, over any Duplex. Events: 'message' (Buffer), 'close' (err?: Error).
 * Partial input is kept as a list of chunks and joined once per message (no quadratic copying, no
 * preallocation from an attacker-chosen length: the length is bounded before anything is kept).
 */
export class MessageSocket extends EventEmitter {
  readonly stream: Duplex;
  readonly #max: number;
  #chunks: Buffer[] = [];
  #have = 0;
  #need = -1; // body length of the message being read; -1 while reading the header
  #closed = false;

  constructor(stream: Duplex, opts: MessageSocketOptions = {}) {
    super();
    this.stream = stream;
    this.#max = opts.maxMessage ?? DEFAULT_MAX_TUNNEL_MESSAGE_BYTES;
    stream.on('data', (chunk: Buffer) => this.#onData(chunk));
    stream.once('close', () => this.#end());
    stream.on('error', (err: Error) => this.#end(err));
  }

  /** Returns false when the stream's buffer is full (wait for 'drain' on `stream`). */
  send(msg: Uint8Array): boolean {
    if (this.#closed) throw new TransportError('CLOSED', 'message socket is closed');
    if (msg.length > this.#max) throw new TransportError('FRAME_TOO_LARGE', 'message too large', 'message');
    const head = Buffer.allocUnsafe(4);
    head.writeUInt32BE(msg.length, 0);
    this.stream.cork();
    this.stream.write(head);
    const ok = this.stream.write(msg);
    this.stream.uncork();
    return ok;
  }

  /** Graceful close (TLS close_notify, then tunnel close). */
  close(): void {
    this.stream.end();
  }

  destroy(err?: Error): void {
    this.stream.destroy(err);
  }

  #onData(chunk: Buffer): void {
    this.#chunks.push(chunk);
    this.#have += chunk.length;
    while (!this.#closed) {
      if (this.#need < 0) {
        if (this.#have < 4) return;
        const len = this.#take(4).readUInt32BE(0);
        if (len > this.#max) {
          this.destroy(new TransportError('FRAME_TOO_LARGE', 'peer message exceeds the limit', 'length'));
          return;
        }
        this.#need = len;
      }
      if (this.#have < this.#need) return;
      const msg = this.#take(this.#need);
      this.#need = -1;
      this.emit('message', msg);
    }
  }

  #take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    let out: Buffer;
    const first = this.#chunks[0]!;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
    } else {
      const all = Buffer.concat(this.#chunks);
      out = all.subarray(0, n);
      this.#chunks = all.length > n ? [all.subarray(n)] : [];
    }
    this.#have -= n;
    return out;
  }

  #end(err?: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#chunks = [];
    this.emit('close', err);
  }
}
