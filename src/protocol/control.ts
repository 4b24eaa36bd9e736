/**
 * Control-message plumbing shared by the three roles (server, PN GW, PNE SDK): request/reply correlation,
 * typed `error` replies with fixed texts, and turning any failure into a stable code.
 *
 * It imports only core + transport, so the GW and the PNE SDK can use it without pulling in server code.
 */
import pino, { type Logger } from 'pino';
import {
  type ControlMessage,
  type ControlMessageInit,
  decodeMessage,
  encodeMessage,
  type MessageOf,
} from '../core/codec/index.js';
import { CpnsError, ErrorCode, isCodedError } from '../core/errors.js';
import { TransportError, TransportErrorCode } from '../transport/errors.js';
import { decodeFrame, encodeFrame, groupPayloadOf } from '../transport/framing.js';
import type { Session } from '../transport/session.js';

export const silentLogger: Logger = pino({ level: 'silent' });

/** Frames from the upstream (the GW's server, the PNE's GW) are bounded by the session's maxPayload already. */
const UPSTREAM_LIMITS = { maxFrame: Number.POSITIVE_INFINITY } as const;

/** Fixed, attacker-free text for each code sent in an `error` reply. */
const TEXT: Partial<Record<string, string>> = {
  MALFORMED: 'malformed input',
  TOO_LARGE: 'input too large',
  UNSUPPORTED_VERSION: 'unsupported version',
  UNSUPPORTED_SUITE: 'unsupported suite',
  SCHEMA: 'message failed schema validation',
  FORBIDDEN: 'not allowed for this identity',
  NOT_FOUND: 'no such service group or entity',
  NOT_MEMBER: 'not a member of the service group',
  ALREADY_MEMBER: 'already a member of the service group',
  ENROLL_REFUSED: 'enrollment refused',
  UNEXPECTED_MESSAGE: 'message not accepted on this connection',
  REVOKED: 'identity revoked',
  EXPIRED_EPOCH: 'epoch not accepted',
  UNKNOWN_EPOCH: 'epoch not known',
  REPLAY: 'counter already relayed',
  INVALID_ARGUMENT: 'invalid argument',
  INTERNAL: 'internal error',
  TIMEOUT: 'timed out',
  // Transport causes travel with their own codes (src/transport/errors.ts, docs/transport.md).
  TLS_REFUSED: 'secure session refused',
  UNREACHABLE: 'peer unreachable',
  NOT_AUTHENTICATED: 'not authenticated',
  ROLE_REFUSED: 'role not accepted here',
  PEER_IDENTITY_MISMATCH: 'peer is not the expected identity',
  BAD_IDENTITY: 'certificate identity invalid',
  BAD_CSR: 'certificate request invalid',
  FRAME_TOO_LARGE: 'frame too large',
  CLOSED: 'connection closed',
  TUNNEL_OVERFLOW: 'tunnel buffer overflow',
  TUNNEL_LIMIT: 'too many tunnels',
  UPGRADE_REFUSED: 'upgrade refused',
  DATAGRAM_TOO_LARGE: 'datagram too large',
};

export function errorText(code: string): string {
  return TEXT[code] ?? 'request failed';
}

/**
 * Store codes a requester may see (docs/errors.md): a missing row is the protocol's NOT_FOUND, a conflicting
 * write FORBIDDEN. Any other store state is the server's own failure, so it goes out as INTERNAL.
 */
const STORE_ON_WIRE: ReadonlyMap<string, ErrorCode> = new Map([
  ['NOT_FOUND', ErrorCode.NOT_FOUND],
  ['CONFLICT', ErrorCode.FORBIDDEN],
]);

/**
 * Stable wire code of any thrown value, the one mapping for `error` replies (docs/errors.md): core and
 * transport codes as they are (a timeout is TIMEOUT, a closed session CLOSED...), store codes through
 * STORE_ON_WIRE, everything else (CLI and admin errors, anything not a CodedError) INTERNAL.
 */
export function codeOf(e: unknown): string {
  if (!isCodedError(e)) return 'INTERNAL';
  if (e.family === 'core' || e.family === 'transport') return e.code;
  if (e.family === 'store') return STORE_ON_WIRE.get(e.code) ?? 'INTERNAL';
  return 'INTERNAL';
}

export function fail(code: ErrorCode, field?: string): never {
  throw new CpnsError(code, errorText(code), field);
}

/** Messages that answer a request by carrying the request's number in `id` (instead of `ok`/`error` `ref`). */
const TYPED_REPLIES: ReadonlySet<string> = new Set([
  'registered',
  'sg.created',
  'enroll.response',
  'key.deliver',
]);

interface Pending {
  resolve: (m: ControlMessage) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * One control channel: `sendRaw` puts encoded CBOR on the wire (as a 0x01 frame on a session, or as a message on
 * the tunnel's MessageSocket). Requests get increasing ids; `accept()` routes replies to their request.
 */
export class Control {
  readonly #sendRaw: (payload: Uint8Array) => void;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;

  constructor(sendRaw: (payload: Uint8Array) => void) {
    this.#sendRaw = sendRaw;
  }

  /** For a session: control messages go as 0x01 frames. */
  static forSession(session: Session): Control {
    return new Control((payload) => session.send(encodeFrame({ kind: 'control', payload })));
  }

  send(msg: ControlMessageInit): void {
    this.#sendRaw(encodeMessage(msg));
  }

  /** A typed error reply; `pneId` (server -> GW) names the PNE whose group message was refused. */
  sendError(code: string, ref?: number, field?: string, pneId?: string): void {
    const safeField = field !== undefined && /^[A-Za-z0-9_.[\]]{1,64}$/.test(field) ? field : undefined;
    try {
      // `pneId` comes from a header's 16-byte sender id, which always formats as a valid identity.
      this.send({
        t: 'error',
        code,
        message: errorText(code),
        field: safeField,
        ref,
        ...(pneId ? { pneId } : {}),
      });
    } catch {
      // never let a reply failure escape (closed channel)
    }
  }

  sendOk(ref: number | undefined): void {
    if (ref !== undefined) this.send({ t: 'ok', ref });
  }

  /** Sends `msg` with a fresh id; resolves with the reply, rejects with a CpnsError for an `error` reply. */
  request(msg: ControlMessageInit, timeoutMs = 10_000): Promise<ControlMessage> {
    const id = this.#nextId++;
    return new Promise<ControlMessage>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new CpnsError(ErrorCode.TIMEOUT, 'request timed out'));
      }, timeoutMs);
      timer.unref();
      this.#pending.set(id, { resolve, reject, timer });
      try {
        this.send({ ...msg, id } as ControlMessageInit);
      } catch (e) {
        clearTimeout(timer);
        this.#pending.delete(id);
        reject(e as Error);
      }
    });
  }

  /** Returns true when `msg` was the reply to one of our requests (and consumed it). */
  accept(msg: ControlMessage): boolean {
    let ref: number | undefined;
    if (msg.t === 'ok' || msg.t === 'error') ref = msg.ref;
    else if (TYPED_REPLIES.has(msg.t)) ref = msg.id;
    if (ref === undefined) return false;
    const p = this.#pending.get(ref);
    if (!p) return false;
    this.#pending.delete(ref);
    clearTimeout(p.timer);
    if (msg.t === 'error') {
      p.reject(errorOfReply(msg.code, msg.field));
    } else {
      p.resolve(msg);
    }
    return true;
  }

  failAll(err: Error): void {
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.#pending.clear();
  }
}

/** The typed error of an `error` reply: product codes as CpnsError, transport codes as TransportError. */
function errorOfReply(code: string, field: string | undefined): Error {
  if (Object.hasOwn(TransportErrorCode, code) && !Object.hasOwn(ErrorCode, code)) {
    return new TransportError(code as TransportErrorCode, errorText(code), field);
  }
  const known = (Object.hasOwn(ErrorCode, code) ? code : ErrorCode.UNEXPECTED_MESSAGE) as ErrorCode;
  return new CpnsError(known, errorText(known), field);
}

/** Decodes a control payload; throws CpnsError only. */
export function decodeControl(payload: Uint8Array): ControlMessage {
  return decodeMessage(payload);
}

// Identifier helpers live in core (one module for the whole product); re-exported for the roles' callers.
export {
  bytesToUuid,
  NIL_UUID,
  senderIdentity,
  toPneIdentity,
  uuidOf,
  uuidToBytes,
} from '../core/ids.js';

export type { Logger };

/** A connection whose requests are handled one at a time, in arrival order. */
export interface RequestQueue {
  queue: Promise<void>;
}

/**
 * Queue a decoded request behind the connection's earlier ones and answer any failure with a typed `error`
 * (stable code, fixed text, the request's id as `ref`). Unexpected failures are logged as INTERNAL; the
 * connection stays up either way.
 */
export function handleInOrder(
  conn: RequestQueue,
  control: Control,
  msg: ControlMessage,
  handle: (msg: ControlMessage) => Promise<void>,
  log: Logger,
  what: string,
): void {
  conn.queue = conn.queue.then(async () => {
    try {
      await handle(msg);
    } catch (e) {
      const code = codeOf(e);
      if (code === 'INTERNAL') log.error({ err: e, t: msg.t }, `${what} request failed`);
      control.sendError(code, msg.id, (e as CpnsError).field);
    }
  });
}

/**
 * Serve one frame from a peer session: group frames (0x05) go to `onGroup` with the whole frame and its payload,
 * tunnel frames are left to the tunnel relay/mux, control frames are decoded and handled in order by `handle`.
 * Undecodable input gets a typed `error` reply; the session stays up.
 */
export function serveFrame(
  conn: RequestQueue & { readonly control: Control; readonly session: Session },
  buf: Buffer,
  onGroup: (frame: Buffer, payload: Buffer) => void,
  handle: (msg: ControlMessage) => Promise<void>,
  log: Logger,
  what: string,
): void {
  let msg: ControlMessage;
  try {
    const limits = { maxFrame: conn.session.maxPayload };
    // The payload is a view into the frame (no copy): onGroup copies what it keeps.
    const group = groupPayloadOf(buf, limits);
    if (group) {
      onGroup(buf, group);
      return;
    }
    const f = decodeFrame(buf, limits);
    // Tunnel frames are the tunnel layer's (tunnel-frames.ts); group frames were handled above.
    if (f.kind !== 'control') return;
    msg = decodeControl(f.payload);
  } catch (e) {
    conn.control.sendError(codeOf(e), undefined, (e as CpnsError).field);
    return;
  }
  if (conn.control.accept(msg)) return;
  handleInOrder(conn, conn.control, msg, handle, log, what);
}

/**
 * Client side of a session (the GW's link up to the server, the PNE's link up to its GW): group frames go to
 * `onGroup`, tunnel frames are left to the tunnel relay/mux, control messages are returned once reply
 * correlation has not claimed them. A bad frame from the upstream is logged, not answered.
 */
export function readUpstreamFrame(
  buf: Buffer,
  control: Control,
  onGroup: (frame: Buffer, payload: Buffer) => void,
  log: Logger,
  from: string,
): ControlMessage | undefined {
  let msg: ControlMessage;
  try {
    const limits = UPSTREAM_LIMITS;
    // The payload is a view into the frame (no copy): onGroup copies what it keeps.
    const group = groupPayloadOf(buf, limits);
    if (group) {
      onGroup(buf, group);
      return undefined;
    }
    const f = decodeFrame(buf, limits);
    if (f.kind !== 'control') return undefined;
    msg = decodeControl(f.payload);
  } catch (e) {
    log.warn({ code: codeOf(e) }, `bad frame from ${from}`);
    return undefined;
  }
  return control.accept(msg) ? undefined : msg;
}

/**
 * An enrollment session carries control messages only, and only `enroll.request`: anything else is answered with
 * a typed error and yields undefined.
 */
export function readEnrollRequest(
  buf: Buffer,
  session: Session,
  control: Control,
): MessageOf<'enroll.request'> | undefined {
  let msg: ControlMessage;
  try {
    const f = decodeFrame(buf, { maxFrame: session.maxPayload });
    if (f.kind !== 'control') fail(ErrorCode.UNEXPECTED_MESSAGE);
    msg = decodeControl(f.payload);
  } catch (e) {
    control.sendError(codeOf(e), undefined, (e as CpnsError).field);
    return undefined;
  }
  if (msg.t !== 'enroll.request') {
    control.sendError(ErrorCode.UNEXPECTED_MESSAGE, msg.id);
    return undefined;
  }
  return msg;
}
