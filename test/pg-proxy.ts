/**
 * A TCP proxy in front of PostgreSQL that a test can cut: `cut()` destroys every connection through it and
 * refuses new ones (the database is gone for whoever connects through it, without a word from the server: a
 * network partition, a crashed host), `restore()` accepts again on the same port. `stall()` stops passing the
 * server's replies on, so a query is in flight when the cut comes.
 */
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';

export class CutProxy {
  readonly #target: { host: string; port: number };
  readonly #sockets = new Set<Socket>();
  readonly #upstreams = new Set<Socket>();
  #server: Server | undefined;
  port = 0;

  constructor(target: { host: string; port: number }) {
    this.#target = target;
  }

  /** A proxy for the server of `url`; `viaProxy()` is that URL through the proxy. */
  static forUrl(url: string): CutProxy & { viaProxy(): string } {
    const u = new URL(url);
    const p = new CutProxy({ host: u.hostname, port: Number(u.port || 5432) });
    return Object.assign(p, {
      viaProxy: () => {
        const v = new URL(url);
        v.hostname = '127.0.0.1';
        v.port = String(p.port);
        return v.toString();
      },
    });
  }

  async start(): Promise<void> {
    const server = createServer((client) => {
      const upstream = tcpConnect(this.#target);
      this.#upstreams.add(upstream);
      for (const s of [client, upstream]) {
        this.#sockets.add(s);
        s.on('close', () => {
          this.#sockets.delete(s);
          this.#upstreams.delete(s);
        });
        s.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    const a = server.address();
    this.port = typeof a === 'object' && a ? a.port : 0;
    this.#server = server;
  }

  /** The server's replies are held back (not delivered) on every current connection. */
  stall(): void {
    for (const u of this.#upstreams) u.unpipe();
  }

  /** Every connection through the proxy is destroyed and the port refuses new ones. */
  async cut(): Promise<void> {
    const s = this.#server;
    this.#server = undefined;
    for (const sock of this.#sockets) sock.destroy();
    if (s) await new Promise<void>((r) => s.close(() => r()));
  }

  restore(): Promise<void> {
    return this.start();
  }
}
