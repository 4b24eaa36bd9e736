/**
 * The PN's local broadcast medium (docs/design.md §4 "Broadcast delivery"): UDP multicast standing in for Wi-Fi or
 * Bluetooth broadcast. The GW broadcasts each Group Key delivery (wrapped under GKEKs, signed, CPNS TS §5.3.4)
 * as one self-contained datagram of at most 1200 bytes; every PNE listening on the medium receives it.
 * The medium gives no security at all: whatever it carries must protect itself.
 *
 * Loopback: Linux `lo` has no MULTICAST flag, yet multicast works on it when the sending socket picks the
 * interface explicitly (IP_MULTICAST_IF = 127.0.0.1, via setMulticastInterface) and listeners join the group on
 * 127.0.0.1 (addMembership(group, '127.0.0.1')). Multicast loopback must be on so listeners on the same host
 * (the sending GW's own PNEs, in demos and tests) receive.
 *
 * Receive buffer: a burst (a multi-datagram delivery on a busy medium, or a flood of junk) must not overflow the
 * socket while the PNE verifies signatures, so listeners ask for `recvBufferBytes` (default 4 MiB). Linux caps the
 * request at net.core.rmem_max (often 208 KiB; raise it with `sysctl -w net.core.rmem_max=8388608`) and reports
 * twice the value it granted (its bookkeeping overhead); `recvBufferSize` is what the kernel reports.
 */
import dgram from 'node:dgram';
import { EventEmitter } from 'node:events';
import { isIPv4 } from 'node:net';
import { CpnsError } from '../core/errors.js';
import { TransportError } from './errors.js';

/** One datagram must fit a UDP payload on any path without fragmentation (IPv6 minimum MTU 1280 − headers). */
export const MAX_DATAGRAM = 1200;
/** Default receive buffer requested for a listening medium: room for bursts (≈3 500 datagrams of 1200 B). */
export const DEFAULT_RECV_BUFFER_BYTES = 4 * 1024 * 1024;
/** Drop code of a datagram the medium discards for its size (the same code the decoder gives it). */
export const DROP_TOO_LARGE = 'TOO_LARGE';

export interface BroadcastMediumOptions {
  /** Medium name, e.g. 'wifi' or 'bt'; only informative. */
  name: string;
  /** IPv4 multicast group (224.0.0.0/4), distinct per medium, e.g. 239.255.77.1. */
  group: string;
  port: number;
  /** Address of the interface to send on and join on. Default 127.0.0.1 (loopback). */
  interfaceAddress?: string;
  /** Receive datagrams (PNE side). Default true. */
  listen?: boolean;
  /** Multicast TTL; 1 keeps datagrams on the local link. */
  ttl?: number;
  /**
   * Receive buffer to request (SO_RCVBUF) when listening. Default DEFAULT_RECV_BUFFER_BYTES (4 MiB); 0 keeps the
   * OS default. Linux caps it at net.core.rmem_max; the effective size is `recvBufferSize`.
   */
  recvBufferBytes?: number;
}

export interface DatagramInfo {
  address: string;
  port: number;
  medium: string;
}

function isMulticast(addr: string): boolean {
  if (!isIPv4(addr)) return false;
  const first = Number(addr.split('.')[0]);
  return first >= 224 && first <= 239;
}

function bind(sock: dgram.Socket, port: number, address: string): Promise<void> {
  return new Promise((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(port, address, () => {
      sock.off('error', reject);
      resolve();
    });
  });
}

/**
 * Events: 'datagram' (data: Buffer, info: DatagramInfo); 'drop' (code: string, info: DatagramInfo) for a datagram
 * discarded before it is emitted (DROP_TOO_LARGE: over 1200 bytes), so listeners count it with their other drops.
 * 'error' is never emitted (socket errors are dropped).
 */
export class BroadcastMedium extends EventEmitter {
  readonly name: string;
  readonly group: string;
  readonly port: number;
  readonly interfaceAddress: string;
  /** Receive buffer the kernel reports for the listening socket (bytes), or undefined when not listening. */
  readonly recvBufferSize: number | undefined;
  readonly #rx: dgram.Socket | undefined;
  readonly #tx: dgram.Socket;
  #closed = false;

  private constructor(
    o: BroadcastMediumOptions,
    rx: dgram.Socket | undefined,
    tx: dgram.Socket,
    recvBufferSize: number | undefined,
  ) {
    super();
    this.recvBufferSize = recvBufferSize;
    this.name = o.name;
    this.group = o.group;
    this.port = o.port;
    this.interfaceAddress = o.interfaceAddress ?? '127.0.0.1';
    this.#rx = rx;
    this.#tx = tx;
    rx?.on('message', (msg, rinfo) => {
      // Bound to the group address, so only this medium's datagrams arrive; oversize ones are dropped here but
      // reported, so they are counted like every other drop.
      const info: DatagramInfo = { address: rinfo.address, port: rinfo.port, medium: this.name };
      if (msg.length > MAX_DATAGRAM) {
        this.emit('drop', DROP_TOO_LARGE, info);
        return;
      }
      this.emit('datagram', msg, info);
    });
  }

  static async open(o: BroadcastMediumOptions): Promise<BroadcastMedium> {
    if (!isMulticast(o.group)) {
      throw new CpnsError('INVALID_ARGUMENT', 'group must be an IPv4 multicast address', 'group');
    }
    if (!Number.isInteger(o.port) || o.port < 1 || o.port > 65535) {
      throw new CpnsError('INVALID_ARGUMENT', 'port must be in 1..65535', 'port');
    }
    const recvBufferBytes = o.recvBufferBytes ?? DEFAULT_RECV_BUFFER_BYTES;
    if (!Number.isInteger(recvBufferBytes) || recvBufferBytes < 0 || recvBufferBytes > 0x7fffffff) {
      throw new CpnsError(
        'INVALID_ARGUMENT',
        'recvBufferBytes must be a non-negative integer',
        'recvBufferBytes',
      );
    }
    const iface = o.interfaceAddress ?? '127.0.0.1';
    let recvBufferSize: number | undefined;
    let rx: dgram.Socket | undefined;
    const errDrop = (): void => {}; // a dgram 'error' without listener would crash the process
    if (o.listen ?? true) {
      // reuseAddr: several PNEs (processes or tests) on one host share the medium's port.
      rx = dgram.createSocket({ type: 'udp4', reuseAddr: true });
      rx.on('error', errDrop);
      // On Linux, binding to the group address (not 0.0.0.0) filters out other groups on the same port: without
      // it, IP_MULTICAST_ALL would deliver every group joined by any socket on the host.
      await bind(rx, o.port, process.platform === 'linux' ? o.group : '0.0.0.0');
      rx.addMembership(o.group, iface);
      rx.setMulticastLoopback(true);
      if (recvBufferBytes > 0) {
        try {
          rx.setRecvBufferSize(recvBufferBytes); // silently capped by the kernel (rmem_max)
        } catch {} // not settable on this platform: keep the default
      }
      try {
        recvBufferSize = rx.getRecvBufferSize();
      } catch {}
    }
    const tx = dgram.createSocket({ type: 'udp4' });
    tx.on('error', errDrop);
    await bind(tx, 0, iface);
    tx.setMulticastInterface(iface);
    tx.setMulticastTTL(o.ttl ?? 1);
    tx.setMulticastLoopback(true);
    return new BroadcastMedium(o, rx, tx, recvBufferSize);
  }

  /** Broadcasts one datagram (≤ 1200 bytes, else DATAGRAM_TOO_LARGE before anything is sent). */
  send(datagram: Uint8Array): Promise<void> {
    if (datagram.length > MAX_DATAGRAM) {
      return Promise.reject(
        new TransportError('DATAGRAM_TOO_LARGE', 'datagram exceeds 1200 bytes', 'datagram'),
      );
    }
    if (this.#closed) return Promise.reject(new TransportError('CLOSED', 'medium is closed'));
    return new Promise((resolve, reject) => {
      this.#tx.send(datagram, this.port, this.group, (err) => (err ? reject(err) : resolve()));
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#rx?.dropMembership(this.group, this.interfaceAddress);
    } catch {}
    this.#rx?.close();
    this.#tx.close();
  }
}
