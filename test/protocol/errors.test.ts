/** docs/errors.md: transport errors keep their own codes on the wire; timeouts are TIMEOUT (not INVALID_ARGUMENT). */
import { describe, expect, it } from 'vitest';
import { type ControlMessage, decodeMessage } from '../../src/core/codec/index.js';
import { isCpnsError } from '../../src/core/errors.js';
import { Control, codeOf, errorText } from '../../src/protocol/control.js';
import { isTransportError, TransportError } from '../../src/transport/errors.js';

/** Two Controls wired back to back (what a session does), with the far side's messages collected. */
function pair() {
  const far: ControlMessage[] = [];
  let near: Control | undefined;
  const farSide = new Control((p) => near?.accept(decodeMessage(p)));
  near = new Control((p) => far.push(decodeMessage(p)));
  return { near, farSide, far };
}

describe('error codes across the wire', () => {
  it('a request that gets no reply rejects with TIMEOUT', async () => {
    const { near } = pair();
    const err = await near.request({ t: 'gw.deregister' }, 30).catch((e: unknown) => e);
    expect(isCpnsError(err) && err.code).toBe('TIMEOUT');
    expect(codeOf(err)).toBe('TIMEOUT');
  });

  it.each(['TIMEOUT', 'CLOSED', 'TUNNEL_LIMIT', 'TLS_REFUSED', 'FRAME_TOO_LARGE'] as const)(
    'a TransportError %s keeps its code (codeOf), not INTERNAL',
    (code) => {
      expect(codeOf(new TransportError(code, 'x'))).toBe(code);
    },
  );

  it.each([
    ['TUNNEL_LIMIT', 'transport', 'TUNNEL_LIMIT'],
    ['CLOSED', 'transport', 'CLOSED'],
    ['TIMEOUT', 'cpns', 'TIMEOUT'],
    ['REVOKED', 'cpns', 'REVOKED'],
    ['FORBIDDEN', 'cpns', 'FORBIDDEN'],
    ['NOT_A_REAL_CODE', 'cpns', 'UNEXPECTED_MESSAGE'],
  ])('an error reply %s arrives as a %s error with code %s', async (sent, kind, got) => {
    const { near, far, farSide } = pair();
    const pending = near.request({ t: 'gw.deregister' }, 2000).catch((e: unknown) => e);
    const req = far.find((m) => m.t === 'gw.deregister');
    // A reply with a hostile text: the requester must not take it over.
    farSide.send({
      t: 'error',
      code: sent,
      message: 'EVILMARKER from the peer',
      ref: (req as { id?: number }).id,
    });
    const err = await pending;
    expect(kind === 'transport' ? isTransportError(err) : isCpnsError(err)).toBe(true);
    expect(codeOf(err)).toBe(got);
    // Fixed texts only: the receiver's own text for the code, never the reply's message.
    expect((err as Error).message).toBe(errorText(got));
  });
});
