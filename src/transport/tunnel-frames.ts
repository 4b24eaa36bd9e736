/**
 * The tunnel frame kinds (0x02 data, 0x03 open, 0x04 close; docs/transport.md "Frames") as the tunnel ends and
 * the GW relay pick them out of a session's frames. Every other kind is the role layer's.
 */
import { CpnsError } from '../core/errors.js';
import { decodeFrame, encodeFrame, type Frame, isTunnelKind } from './framing.js';
import type { Session } from './session.js';

export type TunnelFrame = Extract<Frame, { kind: 'tunnel-data' | 'tunnel-open' | 'tunnel-close' }>;

function isTunnelFrame(f: Frame): f is TunnelFrame {
  return f.kind === 'tunnel-data' || f.kind === 'tunnel-open' || f.kind === 'tunnel-close';
}

/** Decodes a session frame if it is a tunnel frame; anything else (or malformed) is left to the role layer. */
export function tunnelFrameOf(buf: Buffer, maxFrame: number): TunnelFrame | undefined {
  // Every frame of a session passes here (group messages too): other kinds are told by their first byte.
  if (!isTunnelKind(buf)) return undefined;
  try {
    const f = decodeFrame(buf, { maxFrame });
    return isTunnelFrame(f) ? f : undefined;
  } catch (e) {
    if (e instanceof CpnsError) return undefined;
    throw e;
  }
}

export function sendTunnelClose(session: Session, tunnelId: number, reason: number): void {
  session.send(encodeFrame({ kind: 'tunnel-close', tunnelId, reason }));
}

/**
 * The tunnel id after `id` on the same side (odd ids: the session's client side, even: its server side), wrapping
 * to the side's first id (1 or 2) past 2^32 - 1: one rule for the tunnel ends and the GW relay.
 */
export function nextTunnelId(id: number): number {
  return id + 2 > 0xffffffff ? 2 - (id % 2) : id + 2;
}
