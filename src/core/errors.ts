/**
 * Errors of the whole product share one base class, `CodedError` (docs/errors.md): a stable string `code`,
 * the `field` it is about (decoding/validation errors) and an optional `cause`. Each family (core, transport,
 * store, CLI, admin) is one subclass with its own code table. The wire (`codeOf`, src/protocol/control.ts) and
 * the admin API (`toHttpError`, src/admin/errors.ts) each map any error in one function over this base class,
 * so neither needs to know the families' modules. Messages are fixed texts chosen by us: they never carry key
 * material or bytes supplied by a peer.
 */

/** Which code table a `CodedError` draws from; the wire and HTTP mappings are per family (docs/errors.md). */
export type ErrorFamily = 'core' | 'transport' | 'store' | 'cli' | 'admin';

export abstract class CodedError<C extends string = string> extends Error {
  abstract readonly family: ErrorFamily;
  readonly code: C;
  /** Name of the offending field (schema path, option, argument), when the error is about one. */
  readonly field: string | undefined;

  constructor(code: C, message: string, field?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.field = field;
  }
}

/** True for an error of any family (optionally with this `code`). */
export function isCodedError(e: unknown, code?: string): e is CodedError {
  return e instanceof CodedError && (code === undefined || e.code === code);
}

/** The core family: codec, crypto, group messages, broadcast delivery, and the protocol's own refusals. */
export const ErrorCode = {
  /** Input is structurally invalid (truncated, wrong type, bad enum, trailing bytes...). */
  MALFORMED: 'MALFORMED',
  /** Input exceeds a configured size or count limit; rejected before allocation. */
  TOO_LARGE: 'TOO_LARGE',
  /** Protocol version not supported. */
  UNSUPPORTED_VERSION: 'UNSUPPORTED_VERSION',
  /** AEAD suite not supported or not allowed for this Service Group. */
  UNSUPPORTED_SUITE: 'UNSUPPORTED_SUITE',
  /** AEAD tag (the Group Key MAC) did not verify: forged, corrupted, or wrong key. */
  BAD_MAC: 'BAD_MAC',
  /** Counter already seen or older than the replay window. */
  REPLAY: 'REPLAY',
  /** No Group Key known for this (Service Group, epoch): caller should fetch the current key. */
  UNKNOWN_EPOCH: 'UNKNOWN_EPOCH',
  /** Epoch is known but no longer accepted (older than previous, or previous past its grace period). */
  EXPIRED_EPOCH: 'EXPIRED_EPOCH',
  /** Service Group unknown to this receiver. */
  UNKNOWN_GROUP: 'UNKNOWN_GROUP',
  /** Signature invalid (Ed25519). */
  BAD_SIGNATURE: 'BAD_SIGNATURE',
  /** Policy requires a signature and none was present, or no public key is known for the signer. */
  SIGNATURE_REQUIRED: 'SIGNATURE_REQUIRED',
  /** Sender counter space exhausted: the sender must start a new instance. */
  COUNTER_EXHAUSTED: 'COUNTER_EXHAUSTED',
  /** AES key unwrap failed the integrity check (RFC 3394 §2.2.3) or had an invalid length. */
  UNWRAP_FAILED: 'UNWRAP_FAILED',
  /** Broadcast delivery: this PNE is not in any subset of the cover (it is excluded). */
  NOT_IN_COVER: 'NOT_IN_COVER',
  /** Broadcast delivery: datagram is for another GW, tree or tree version than this PNE holds. */
  WRONG_TREE: 'WRONG_TREE',
  /** Broadcast delivery: epoch is not newer than the one this PNE holds. */
  STALE_EPOCH: 'STALE_EPOCH',
  /** Subset-Difference tree has no unassigned leaf left. */
  TREE_FULL: 'TREE_FULL',
  /** A value given by the local caller (not the network) is out of range. */
  INVALID_ARGUMENT: 'INVALID_ARGUMENT',
  /** A control message field failed schema validation. */
  SCHEMA: 'SCHEMA',
  /** Protocol: the authenticated identity may not do this (not owner/operator, field names someone else). */
  FORBIDDEN: 'FORBIDDEN',
  /** Protocol: the named Service Group, PNE or GW does not exist. */
  NOT_FOUND: 'NOT_FOUND',
  /** Protocol: the PNE is not a member of the Service Group. */
  NOT_MEMBER: 'NOT_MEMBER',
  /** Protocol: the PNE already is a member of the Service Group. */
  ALREADY_MEMBER: 'ALREADY_MEMBER',
  /** Protocol: enrollment token unknown, used, expired or for another role. */
  ENROLL_REFUSED: 'ENROLL_REFUSED',
  /** Protocol: a valid message that this role does not accept on this connection. */
  UNEXPECTED_MESSAGE: 'UNEXPECTED_MESSAGE',
  /** Protocol: the identity is revoked. */
  REVOKED: 'REVOKED',
  /** A request, connection or registration did not complete in time; retrying may help. */
  TIMEOUT: 'TIMEOUT',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export class CpnsError extends CodedError<ErrorCode> {
  readonly family = 'core';

  constructor(code: ErrorCode, message: string, field?: string, options?: { cause?: unknown }) {
    super(code, message, field, options);
    this.name = 'CpnsError';
  }
}

export function isCpnsError(e: unknown, code?: ErrorCode): e is CpnsError {
  return e instanceof CpnsError && (code === undefined || e.code === code);
}
