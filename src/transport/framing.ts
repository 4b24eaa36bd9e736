/**
 * Binary frame kinds carried in the binary WebSocket messages of a secure session (docs/design.md §4 "Wire format").
 * One WebSocket message = one frame; the first byte says what it carries:
 *
 *   0x01 control       kind | payload (CBOR, opaque here; >= 1 byte)
 *   0x02 tunnel data   kind | tunnel id u32 BE | bytes (>= 1 byte)
 *   0x03 tunnel open   kind | tunnel id u32 BE | meta (0..1024 bytes, opaque)
 *   0x04 tunnel close  kind | tunnel id u32 BE | reason u8            (exactly 6 bytes)
 *   0x05 group message kind | payload (opaque: protected by the Group Key, CPNS TS §5.3.4; >= 1 byte)
 *
 * Tunnel id 0 is reserved (never valid). Decoding is zero-copy: returned byte fields are views into the input,
 * so a caller that keeps them past the input's lifetime must copy. Bad input only ever raises CpnsError
 * (MALFORMED or TOO_LARGE) naming the field.
 */
import { CpnsError } from '../core/errors.js';

export const FrameKind = {
  CONTROL: 0x01,
  TUNNEL_DATA: 0x02,
  TUNNEL_OPEN: 0x03,
  TUNNEL_CLOSE: 0x04,
  GROUP: 0x05,
} as const;
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

/** Reasons carried by a tunnel close frame. Unknown values decode as-is (forward compatible). */
export const TunnelCloseReason = {
  NORMAL: 0,
  ERROR: 1,
  REFUSED: 2,
  OVERFLOW: 3,
} as const;

export const DEFAULT_MAX_FRAME = 1024 * 1024;
export const MAX_TUNNEL_META = 1024;
const TUNNEL_HEADER = 5;

export type Frame =
  | { kind: 'control'; payload: Uint8Array }
  | { kind: 'tunnel-data'; tunnelId: number; data: Uint8Array }
  | { kind: 'tunnel-open'; tunnelId: number; meta: Uint8Array }
  | { kind: 'tunnel-close'; tunnelId: number; reason: number }
  | { kind: 'group'; payload: Uint8Array };

export interface FrameLimits {
  /** Largest whole frame accepted or produced, in bytes (default 1 MiB, equal to the session's maxPayload). */
  maxFrame?: number;
}

function checkTunnelId(id: number): void {
  if (!Number.isInteger(id) || id < 1 || id > 0xffffffff) {
    throw new CpnsError('INVALID_ARGUMENT', 'tunnel id must be an integer in 1..2^32-1', 'tunnelId');
  }
}

function withHeader(kind: number, tunnelId: number | undefined, body: Uint8Array, extra = 0): Buffer {
  const head = tunnelId === undefined ? 1 : TUNNEL_HEADER;
  const out = Buffer.allocUnsafe(head + body.length + extra);
  out[0] = kind;
  if (tunnelId !== undefined) out.writeUInt32BE(tunnelId, 1);
  out.set(body, head);
  return out;
}

/** Encodes a frame; caller mistakes (empty payload, bad id, too large) raise CpnsError INVALID_ARGUMENT/TOO_LARGE. */
export function encodeFrame(frame: Frame, limits: FrameLimits = {}): Buffer {
  const max = limits.maxFrame ?? DEFAULT_MAX_FRAME;
  let out: Buffer;
  switch (frame.kind) {
    case 'control':
    case 'group':
      if (frame.payload.length === 0) throw new CpnsError('INVALID_ARGUMENT', 'empty payload', 'payload');
      if (1 + frame.payload.length > max) throw new CpnsError('TOO_LARGE', 'frame too large', 'payload');
      out = withHeader(
        frame.kind === 'control' ? FrameKind.CONTROL : FrameKind.GROUP,
        undefined,
        frame.payload,
      );
      break;
    case 'tunnel-data':
      checkTunnelId(frame.tunnelId);
      if (frame.data.length === 0) throw new CpnsError('INVALID_ARGUMENT', 'empty tunnel data', 'data');
      if (TUNNEL_HEADER + frame.data.length > max)
        throw new CpnsError('TOO_LARGE', 'frame too large', 'data');
      out = withHeader(FrameKind.TUNNEL_DATA, frame.tunnelId, frame.data);
      break;
    case 'tunnel-open':
      checkTunnelId(frame.tunnelId);
      if (frame.meta.length > MAX_TUNNEL_META)
        throw new CpnsError('TOO_LARGE', 'tunnel meta too large', 'meta');
      out = withHeader(FrameKind.TUNNEL_OPEN, frame.tunnelId, frame.meta);
      break;
    case 'tunnel-close': {
      checkTunnelId(frame.tunnelId);
      if (!Number.isInteger(frame.reason) || frame.reason < 0 || frame.reason > 255) {
        throw new CpnsError('INVALID_ARGUMENT', 'reason must be a byte', 'reason');
      }
      out = withHeader(FrameKind.TUNNEL_CLOSE, frame.tunnelId, new Uint8Array(0), 1);
      out[TUNNEL_HEADER] = frame.reason;
      break;
    }
    default:
      throw new CpnsError('INVALID_ARGUMENT', 'unknown frame kind', 'kind');
  }
  return out;
}

/**
 * A group message frame (0x05) from the pieces of a protected message (header, ciphertext, tag, signature):
 * one allocation and one copy of each piece, byte for byte `encodeFrame({ kind: 'group', payload: concat(parts) })`.
 */
export function encodeGroupFrame(parts: readonly Uint8Array[], limits: FrameLimits = {}): Buffer {
  const max = limits.maxFrame ?? DEFAULT_MAX_FRAME;
  let length = 0;
  for (const p of parts) length += p.length;
  if (length === 0) throw new CpnsError('INVALID_ARGUMENT', 'empty payload', 'payload');
  if (1 + length > max) throw new CpnsError('TOO_LARGE', 'frame too large', 'payload');
  const out = Buffer.allocUnsafe(1 + length);
  out[0] = FrameKind.GROUP;
  let o = 1;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * The payload of a group message frame (0x05), as a view into `buf` and checked as `decodeFrame` checks it
 * (TOO_LARGE, MALFORMED); undefined for every other kind. Group frames are most of a session's traffic: this
 * needs no frame object, and callers that dispatch on it decode the other kinds with `decodeFrame`.
 */
export function groupPayloadOf(buf: Buffer, limits: FrameLimits = {}): Buffer | undefined {
  if (buf.length === 0 || buf[0] !== FrameKind.GROUP) return undefined;
  if (buf.length > (limits.maxFrame ?? DEFAULT_MAX_FRAME))
    throw new CpnsError('TOO_LARGE', 'frame too large', 'frame');
  if (buf.length < 2) throw new CpnsError('MALFORMED', 'empty payload', 'payload');
  return buf.subarray(1);
}

/** True when `buf` is a tunnel frame by its kind byte (0x02, 0x03, 0x04); says nothing about the rest. */
export function isTunnelKind(buf: Uint8Array): boolean {
  const k = buf[0];
  return k === FrameKind.TUNNEL_DATA || k === FrameKind.TUNNEL_OPEN || k === FrameKind.TUNNEL_CLOSE;
}

function readTunnelId(buf: Uint8Array): number {
  if (buf.length < TUNNEL_HEADER) throw new CpnsError('MALFORMED', 'truncated tunnel header', 'tunnelId');
  const id = ((buf[1]! << 24) | (buf[2]! << 16) | (buf[3]! << 8) | buf[4]!) >>> 0;
  if (id === 0) throw new CpnsError('MALFORMED', 'tunnel id 0 is reserved', 'tunnelId');
  return id;
}

/** Decodes one frame. Never throws anything but CpnsError (MALFORMED / TOO_LARGE) on hostile input. */
export function decodeFrame(buf: Uint8Array, limits: FrameLimits = {}): Frame {
  const max = limits.maxFrame ?? DEFAULT_MAX_FRAME;
  if (!(buf instanceof Uint8Array)) throw new CpnsError('MALFORMED', 'frame is not bytes', 'frame');
  if (buf.length > max) throw new CpnsError('TOO_LARGE', 'frame too large', 'frame');
  if (buf.length === 0) throw new CpnsError('MALFORMED', 'empty frame', 'kind');
  const kind = buf[0];
  switch (kind) {
    case FrameKind.CONTROL:
    case FrameKind.GROUP: {
      if (buf.length < 2) throw new CpnsError('MALFORMED', 'empty payload', 'payload');
      const payload = buf.subarray(1);
      return kind === FrameKind.CONTROL ? { kind: 'control', payload } : { kind: 'group', payload };
    }
    case FrameKind.TUNNEL_DATA: {
      const tunnelId = readTunnelId(buf);
      if (buf.length === TUNNEL_HEADER) throw new CpnsError('MALFORMED', 'empty tunnel data', 'data');
      return { kind: 'tunnel-data', tunnelId, data: buf.subarray(TUNNEL_HEADER) };
    }
    case FrameKind.TUNNEL_OPEN: {
      const tunnelId = readTunnelId(buf);
      if (buf.length - TUNNEL_HEADER > MAX_TUNNEL_META) {
        throw new CpnsError('TOO_LARGE', 'tunnel meta too large', 'meta');
      }
      return { kind: 'tunnel-open', tunnelId, meta: buf.subarray(TUNNEL_HEADER) };
    }
    case FrameKind.TUNNEL_CLOSE: {
      const tunnelId = readTunnelId(buf);
      if (buf.length !== TUNNEL_HEADER + 1)
        throw new CpnsError('MALFORMED', 'bad tunnel close length', 'reason');
      return { kind: 'tunnel-close', tunnelId, reason: buf[TUNNEL_HEADER]! };
    }
    default:
      throw new CpnsError('MALFORMED', 'unknown frame kind', 'kind');
  }
}

/** Largest tunnel-data chunk that fits in one frame of `maxFrame` bytes. */
export function maxTunnelChunk(maxFrame = DEFAULT_MAX_FRAME): number {
  return maxFrame - TUNNEL_HEADER;
}
