/**
 * The typed events the CPNS Server nodes of a cluster send each other over the event bus (docs/cluster.md).
 * An event says *that* committed state changed (state lives in the store); it never carries key material: a Group
 * Key update is `key.epoch` {sgId, epoch, reason}, and a node that needs the key reads it from the store.
 *
 * Wire form: UTF-8 JSON, one object `{ v: 1, type, at, node, ...fields }`, on subject `cpns.ev.<type>`.
 * Received bytes are hostile input: the size is checked before any decoding, then the JSON is validated
 * strictly (exact key set, types, id formats, bounded strings and lists). Refusals are `CpnsError` with a stable
 * code (TOO_LARGE, MALFORMED, UNSUPPORTED_VERSION, SCHEMA) and a fixed message; `field` names our schema's field,
 * never a key or value taken from the input.
 */
import { CpnsError, ErrorCode } from '../core/errors.js';
import { isUuid } from '../core/ids.js';

/** Wire version of the event body. */
export const EVENT_VERSION = 1;

export interface EventLimits {
  readonly maxEventBytes: number;
  readonly maxListEntries: number;
  readonly maxTokenChars: number;
}

export const EVENT_LIMITS: EventLimits = Object.freeze({
  /** Largest encoded event, in bytes (checked before decoding). */
  maxEventBytes: 16 * 1024,
  /** Most PNE ids in one list of an event (membership added/removed). */
  maxListEntries: 128,
  /** Longest free-text token (rotation reason). */
  maxTokenChars: 64,
});

/** Subject prefix of every event: `cpns.ev.<type>`. */
export const EVENT_SUBJECT_PREFIX = 'cpns.ev.';

type Base = {
  /** When the change committed (ms since the Unix epoch), as the publishing node saw it. */
  readonly at: number;
  /** The server node that committed the change. */
  readonly node: string;
};

export type SgCreated = Base & { readonly type: 'sg.created'; readonly sgId: string };
export type SgDeleted = Base & { readonly type: 'sg.deleted'; readonly sgId: string };
export type MembershipChanged = Base & {
  readonly type: 'membership.changed';
  readonly sgId: string;
  readonly added: readonly string[];
  readonly removed: readonly string[];
  /** Why: 'join' for additions; 'leave', 'remove' or 'revoke' for removals. */
  readonly reason: string;
};
/** A Group Key epoch committed in the store. Never the key itself. */
export type KeyEpochCommitted = Base & {
  readonly type: 'key.epoch';
  readonly sgId: string;
  readonly epoch: number;
  readonly reason: string;
  /** The key update's id, for the logs of every node (docs/operator.md "Following a key update"). */
  readonly updateId?: string;
};
export type PolicyChanged = Base & { readonly type: 'policy.changed'; readonly sgId: string };
export type IdentityRevoked = Base & { readonly type: 'identity.revoked'; readonly identity: string };
/**
 * A member's source-authentication signing key (its Ed25519 public key, lowercase hex), as the PNE announced it on
 * the publishing node: every node hands it to the GWs of the PNE's Service Groups (the signer lists).
 */
export type SignerKey = Base & { readonly type: 'signer.key'; readonly pneId: string; readonly key: string };
/** A PNE proved it is behind `gwId` (rule A1) on the publishing node: any other GW loses it (one place). */
export type PneAttached = Base & {
  readonly type: 'pne.attached';
  readonly pneId: string;
  readonly gwId: string;
};
/** Which server node holds a GW's session, and the lease's generation (higher wins). */
export type GwSessionLease = Base & {
  readonly type: 'gw.lease';
  readonly gwId: string;
  readonly nodeId: string;
  readonly generation: number;
};

export type ClusterEvent =
  | SgCreated
  | SgDeleted
  | MembershipChanged
  | KeyEpochCommitted
  | PolicyChanged
  | IdentityRevoked
  | PneAttached
  | SignerKey
  | GwSessionLease;

export type ClusterEventType = ClusterEvent['type'];

/** The fields of an event of type `T` (what an outbox row's body holds). */
export type EventBody<T extends ClusterEventType> = Omit<
  Extract<ClusterEvent, { type: T }>,
  'type' | 'at' | 'node'
>;

// ------------------------------------------------------------------ field kinds

const PNE_RE = /^urn:cpns:pne:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const GW_RE = /^urn:cpns:gw:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** Server node ids: as `serverName` (urn:cpns:server:<name>) and NATS consumer names allow. */
const NODE_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
const TOKEN_RE = /^[a-z][a-z0-9_.-]*$/;

type Kind =
  | 'sg'
  | 'pne'
  | 'gw'
  | 'identity'
  | 'node'
  | 'epoch'
  | 'generation'
  | 'token'
  | 'pnes'
  | 'time'
  | 'pubkey'
  | 'uuid';

const PUBKEY_RE = /^[0-9a-f]{64}$/;

const SCHEMAS: Readonly<Record<ClusterEventType, Readonly<Record<string, Kind>>>> = {
  'sg.created': { sgId: 'sg' },
  'sg.deleted': { sgId: 'sg' },
  'membership.changed': { sgId: 'sg', added: 'pnes', removed: 'pnes', reason: 'token' },
  'key.epoch': { sgId: 'sg', epoch: 'epoch', reason: 'token' },
  'policy.changed': { sgId: 'sg' },
  'identity.revoked': { identity: 'identity' },
  'pne.attached': { pneId: 'pne', gwId: 'gw' },
  'signer.key': { pneId: 'pne', key: 'pubkey' },
  'gw.lease': { gwId: 'gw', nodeId: 'node', generation: 'generation' },
};

export const EVENT_TYPES: readonly ClusterEventType[] = Object.keys(SCHEMAS) as ClusterEventType[];

/** Fields an event of that type may leave out (rows written before the field existed have none). */
const OPTIONAL: Readonly<Partial<Record<ClusterEventType, Readonly<Record<string, Kind>>>>> = {
  'key.epoch': { updateId: 'uuid' },
};

const ENVELOPE: Readonly<Record<string, Kind>> = { at: 'time', node: 'node' };

const schema = (msg: string, field: string): CpnsError => new CpnsError(ErrorCode.SCHEMA, msg, field);

function checkField(kind: Kind, v: unknown, field: string, max: EventLimits): void {
  switch (kind) {
    case 'sg':
      if (typeof v !== 'string' || !isUuid(v)) throw schema('not a Service Group id', field);
      return;
    case 'uuid':
      if (typeof v !== 'string' || !isUuid(v)) throw schema('not a UUID', field);
      return;
    case 'pne':
      if (typeof v !== 'string' || !PNE_RE.test(v)) throw schema('not a PNE identity', field);
      return;
    case 'gw':
      if (typeof v !== 'string' || !GW_RE.test(v)) throw schema('not a GW identity', field);
      return;
    case 'identity':
      if (typeof v !== 'string' || !(PNE_RE.test(v) || GW_RE.test(v))) throw schema('not an identity', field);
      return;
    case 'node':
      if (typeof v !== 'string' || !NODE_RE.test(v)) throw schema('not a node id', field);
      return;
    case 'epoch':
    case 'generation':
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1)
        throw schema('not a positive integer', field);
      return;
    case 'pubkey':
      if (typeof v !== 'string' || !PUBKEY_RE.test(v)) throw schema('not a public key', field);
      return;
    case 'time':
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw schema('not a time', field);
      return;
    case 'token':
      if (typeof v !== 'string' || v.length > max.maxTokenChars || !TOKEN_RE.test(v))
        throw schema('not a reason token', field);
      return;
    case 'pnes': {
      if (!Array.isArray(v)) throw schema('not a list', field);
      if (v.length > max.maxListEntries) throw new CpnsError(ErrorCode.TOO_LARGE, 'list too long', field);
      const seen = new Set<string>();
      for (const item of v) {
        checkField('pne', item, field, max);
        if (seen.has(item as string)) throw schema('duplicate entry', field);
        seen.add(item as string);
      }
      return;
    }
  }
}

const isEventType = (t: unknown): t is ClusterEventType => typeof t === 'string' && Object.hasOwn(SCHEMAS, t);

/**
 * Validate a decoded value as an event: exactly the keys of its type plus the envelope, each of its kind.
 * Throws `CpnsError` (SCHEMA, UNSUPPORTED_VERSION, TOO_LARGE, MALFORMED).
 */
export function validateEvent(value: unknown, limits: EventLimits = EVENT_LIMITS): ClusterEvent {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new CpnsError(ErrorCode.MALFORMED, 'event is not an object', 'event');
  const o = value as Record<string, unknown>;
  if (o.v !== EVENT_VERSION)
    throw new CpnsError(ErrorCode.UNSUPPORTED_VERSION, 'unsupported event version', 'v');
  if (!isEventType(o.type)) throw schema('unknown event type', 'type');
  const fields = SCHEMAS[o.type];
  const optional = OPTIONAL[o.type] ?? {};
  const keys = Object.keys(o);
  const present = Object.keys(optional).filter((k) => Object.hasOwn(o, k));
  const expected = 2 + Object.keys(ENVELOPE).length + Object.keys(fields).length + present.length;
  for (const k of keys) {
    if (
      k !== 'v' &&
      k !== 'type' &&
      !Object.hasOwn(ENVELOPE, k) &&
      !Object.hasOwn(fields, k) &&
      !Object.hasOwn(optional, k)
    )
      throw schema('unexpected field', 'event');
  }
  if (keys.length !== expected) throw schema('missing field', 'event');
  for (const [k, kind] of Object.entries(ENVELOPE)) checkField(kind, o[k], k, limits);
  for (const [k, kind] of Object.entries(fields)) checkField(kind, o[k], k, limits);
  for (const k of present) checkField(optional[k]!, o[k], k, limits);
  const { v: _v, ...event } = o;
  return event as unknown as ClusterEvent;
}

/** Subject of an event: `cpns.ev.<type>`. */
export const subjectOf = (type: ClusterEventType): string => `${EVENT_SUBJECT_PREFIX}${type}`;

/** Encode a (locally built) event; invalid events are refused like received ones, before anything is sent. */
export function encodeEvent(event: ClusterEvent, limits: EventLimits = EVENT_LIMITS): Uint8Array {
  const body = { v: EVENT_VERSION, ...event };
  validateEvent(body, limits);
  const bytes = Buffer.from(JSON.stringify(body), 'utf8');
  if (bytes.length > limits.maxEventBytes)
    throw new CpnsError(ErrorCode.TOO_LARGE, 'event too large', 'event');
  return bytes;
}

/**
 * Decode received bytes as the event for `subject`. The size is checked before decoding; the subject must be the
 * one of the event's type (an event is never interpreted under another subject).
 */
export function decodeEvent(
  subject: string,
  data: Uint8Array,
  limits: EventLimits = EVENT_LIMITS,
): ClusterEvent {
  if (data.length > limits.maxEventBytes)
    throw new CpnsError(ErrorCode.TOO_LARGE, 'event too large', 'event');
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(data));
  } catch {
    throw new CpnsError(ErrorCode.MALFORMED, 'event is not UTF-8 JSON', 'event');
  }
  const event = validateEvent(value, limits);
  if (subject !== subjectOf(event.type)) throw schema('event type does not match its subject', 'type');
  return event;
}
