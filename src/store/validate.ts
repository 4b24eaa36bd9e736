/**
 * Validation of caller input, shared by every backend: runs before any query, so a bad id never reaches SQL
 * and every backend rejects exactly the same inputs. Errors are CpnsError(INVALID_ARGUMENT) naming the field;
 * messages are fixed texts (never the offending value).
 */
import { isSuite, KEY_BYTES, type Suite } from '../core/crypto/aead.js';
import { CpnsError, ErrorCode } from '../core/errors.js';
import type {
  AdminScope,
  AuditEntry,
  AuditPage,
  AuditQuery,
  DeliveryMethod,
  GroupAudit,
  JoinPolicy,
  JsonObject,
  KeyAudit,
  NewAuditEntry,
  Role,
} from './store.js';

const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
const UUID_RE = new RegExp(`^${UUID}$`);
const GW_RE = new RegExp(`^urn:cpns:gw:${UUID}$`);
const PNE_RE = new RegExp(`^urn:cpns:pne:${UUID}$`);
const HEX_RE = /^[0-9a-fA-F]+$/;
const HEX64_RE = /^[0-9a-f]{64}$/;
const SENDER_RE = /^[0-9a-f]{32}$/;
const INSTANCE_RE = /^[0-9a-f]{16}$/;
const ACTION_RE = /^[a-z][a-z0-9_.:-]{0,63}$/;
const REASON_RE = /^[a-z0-9_.:-]{1,64}$/;
const MEDIUM_RE = /^[a-z0-9_-]{1,32}$/;
const SECRET_NAME_RE = /^[a-z0-9][a-z0-9_.:/-]{0,127}$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
const CONTROL_RE = /[\u0000-\u001f\u007f]/;

/** Highest epoch the wire header can carry (uint32). */
export const MAX_EPOCH = 0xffff_ffff;
/** Highest counter of a group message (uint48). */
export const MAX_COUNTER = 2 ** 48 - 1;
export const MAX_TOKEN_TTL_SEC = 30 * 24 * 3600;
export const MAX_CERT_PEM = 16 * 1024;
export const MAX_POLICY_JSON = 4 * 1024;
export const MAX_DETAIL_JSON = 8 * 1024;
export const MAX_SECRET_BYTES = 64 * 1024;
export const MAX_AUDIT_LIMIT = 1000;
export const DEFAULT_AUDIT_LIMIT = 100;
/** Outbox rows per listOutbox / deleteOutbox call. */
export const MAX_OUTBOX_BATCH = 1000;
export const DEFAULT_OUTBOX_LIMIT = 100;
/** Initial members of createGroup. */
export const MAX_INITIAL_MEMBERS = 10_000;
/** Audit entries one state-changing call may carry (group.create + one member.add per initial member...). */
export const MAX_ATTACHED_AUDIT = MAX_INITIAL_MEMBERS + 16;
/** Audit actions of a Group Key rotation (rotateGroupKey's mandatory audit). */
export const KEY_AUDIT_ACTIONS: readonly string[] = ['key.create', 'key.update'];

function bad(field: string, message: string): never {
  throw new CpnsError(ErrorCode.INVALID_ARGUMENT, message, field);
}

export function gwId(v: unknown, field = 'gwId'): string {
  if (typeof v !== 'string' || !GW_RE.test(v)) bad(field, 'expected urn:cpns:gw:<lowercase uuid>');
  return v;
}

export function pneId(v: unknown, field = 'pneId'): string {
  if (typeof v !== 'string' || !PNE_RE.test(v)) bad(field, 'expected urn:cpns:pne:<lowercase uuid>');
  return v;
}

export function isGwId(v: string): boolean {
  return GW_RE.test(v);
}

export function isPneId(v: string): boolean {
  return PNE_RE.test(v);
}

/** A GW or PNE id; returns its role. */
export function nodeId(v: unknown, field = 'id'): Role {
  if (typeof v === 'string' && GW_RE.test(v)) return 'gw';
  if (typeof v === 'string' && PNE_RE.test(v)) return 'pne';
  bad(field, 'expected urn:cpns:gw:<uuid> or urn:cpns:pne:<uuid>');
}

export function uuid(v: unknown, field: string): string {
  if (typeof v !== 'string' || !UUID_RE.test(v)) bad(field, 'expected a lowercase UUID');
  return v;
}

export function sgId(v: unknown, field = 'sgId'): string {
  if (typeof v !== 'string' || !UUID_RE.test(v)) bad(field, 'expected a lowercase uuid');
  return v;
}

export function role(v: unknown, field = 'role'): Role {
  if (v !== 'gw' && v !== 'pne') bad(field, "expected 'gw' or 'pne'");
  return v;
}

export function ownerId(v: unknown, field = 'ownerId'): string {
  if (v === 'operator') return v;
  return pneId(v, field);
}

export function joinPolicy(v: unknown, field = 'joinPolicy'): JoinPolicy {
  if (v !== 'open' && v !== 'invite') bad(field, "expected 'open' or 'invite'");
  return v;
}

export function suite(v: unknown, field = 'suite'): Suite {
  if (typeof v !== 'number' || !isSuite(v)) bad(field, 'unsupported suite');
  return v;
}

export function bool(v: unknown, field: string): boolean {
  if (typeof v !== 'boolean') bad(field, 'expected a boolean');
  return v;
}

export function method(v: unknown, field = 'method'): DeliveryMethod {
  if (v !== 'unicast' && v !== 'broadcast' && v !== 'fallback')
    bad(field, "expected 'unicast', 'broadcast' or 'fallback'");
  return v;
}

export function int(v: unknown, field: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max)
    bad(field, 'integer out of range');
  return v;
}

/** A time in ms since the Unix epoch. */
export function time(v: unknown, field: string): number {
  return int(v, field, 0, 8.64e15);
}

export function epoch(v: unknown, field = 'epoch'): number {
  return int(v, field, 1, MAX_EPOCH);
}

/** Printable text of 1..max characters (no control characters). */
export function text(v: unknown, field: string, max: number): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > max || CONTROL_RE.test(v))
    bad(field, 'expected printable text of bounded length');
  return v;
}

export function reason(v: unknown, field = 'reason'): string {
  if (typeof v !== 'string' || !REASON_RE.test(v)) bad(field, 'expected 1..64 chars [a-z0-9_.:-]');
  return v;
}

export function action(v: unknown, field = 'action'): string {
  if (typeof v !== 'string' || !ACTION_RE.test(v)) bad(field, 'expected [a-z][a-z0-9_.:-]{0,63}');
  return v;
}

/** Certificate serial: hex, normalized to lowercase without leading zeros (max 20 bytes per RFC 5280, with slack). */
export function certSerial(v: unknown, field = 'certSerial'): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > 66 || !HEX_RE.test(v))
    bad(field, 'expected a hex serial number');
  const s = v.toLowerCase().replace(/^0+/, '');
  return s.length === 0 ? '0' : s;
}

export function isCertSerial(v: string): boolean {
  return v.length > 0 && v.length <= 66 && HEX_RE.test(v);
}

export function certPem(v: unknown, field = 'certPem'): string {
  if (
    typeof v !== 'string' ||
    v.length > MAX_CERT_PEM ||
    !v.includes('-----BEGIN CERTIFICATE-----') ||
    !v.includes('-----END CERTIFICATE-----') ||
    v.includes('\u0000')
  )
    bad(field, 'expected a PEM certificate of at most 16 KiB');
  return v;
}

export function tokenHash(v: unknown, field = 'tokenHash'): string {
  if (typeof v !== 'string' || !HEX64_RE.test(v)) bad(field, 'expected a SHA-256 hash as 64 lowercase hex');
  return v;
}

const ADMIN_TOKEN_NAME_RE = /^[a-z0-9][a-z0-9._-]{0,62}$/;

export function adminTokenName(v: unknown, field = 'name'): string {
  if (typeof v !== 'string' || !ADMIN_TOKEN_NAME_RE.test(v))
    bad(field, 'expected a token name: lowercase letters, digits, . _ -, at most 63');
  return v;
}

export function adminScope(v: unknown, field = 'scope'): AdminScope {
  if (v !== 'read' && v !== 'operator' && v !== 'admin') bad(field, "expected 'read', 'operator' or 'admin'");
  return v;
}

/** The audit entries of a method's `audit` option, validated before any query (at most 16). */
export function audits(entries: readonly NewAuditEntry[] | undefined, now: number): AuditValues[] {
  if (entries === undefined) return [];
  if (!Array.isArray(entries) || entries.length > 16) bad('audit', 'expected at most 16 audit entries');
  return entries.map((e) => auditEntry(e, now));
}

export function media(v: unknown, field = 'media'): string[] {
  if (!Array.isArray(v) || v.length > 16) bad(field, 'expected an array of at most 16 media');
  const out: string[] = [];
  for (const m of v) {
    if (typeof m !== 'string' || !MEDIUM_RE.test(m)) bad(field, 'medium must match [a-z0-9_-]{1,32}');
    if (!out.includes(m)) out.push(m);
  }
  return out;
}

export function groupKey(v: unknown, field = 'key'): Uint8Array {
  if (!(v instanceof Uint8Array) || v.length !== KEY_BYTES) bad(field, 'Group Key must be 32 bytes');
  return v;
}

export function sender(v: unknown, field = 'sender'): string {
  if (typeof v !== 'string' || !SENDER_RE.test(v)) bad(field, 'expected 16 bytes as 32 lowercase hex');
  return v;
}

export function instance(v: unknown, field = 'instance'): string {
  if (typeof v !== 'string' || !INSTANCE_RE.test(v)) bad(field, 'expected 8 bytes as 16 lowercase hex');
  return v;
}

export function secretName(v: unknown, field = 'name'): string {
  if (typeof v !== 'string' || !SECRET_NAME_RE.test(v)) bad(field, 'expected 1..128 chars [a-z0-9_.:/-]');
  return v;
}

export function secretValue(v: unknown, field = 'value'): Uint8Array {
  if (!(v instanceof Uint8Array) || v.length === 0 || v.length > MAX_SECRET_BYTES)
    bad(field, 'secret must be 1 byte .. 64 KiB');
  return v;
}

const SECRET_FIELD_RE = /^(key|gk|groupkey|secret|token|password|masterkey|privatekey|plaintext|gkdk|gkek)$/i;

function checkJson(v: unknown, field: string, depth: number, secretsAllowed: boolean): void {
  if (depth > 16) bad(field, 'JSON nested too deeply');
  // NUL: PostgreSQL's text and jsonb cannot hold it, so no backend accepts it (the same inputs everywhere)
  if (typeof v === 'string' && v.includes('\u0000')) bad(field, 'NUL characters are not allowed');
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) bad(field, 'JSON numbers must be finite');
    return;
  }
  if (Array.isArray(v)) {
    for (const x of v) checkJson(x, field, depth + 1, secretsAllowed);
    return;
  }
  if (typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    for (const [k, x] of Object.entries(v)) {
      if (k.includes('\u0000')) bad(field, 'NUL characters are not allowed');
      if (!secretsAllowed && SECRET_FIELD_RE.test(k))
        bad(field, 'secret-looking field refused in audit detail');
      checkJson(x, field, depth + 1, secretsAllowed);
    }
    return;
  }
  // Buffers, typed arrays, Dates, class instances, bigint, functions...: not plain JSON.
  bad(field, 'expected plain JSON (no binary or class instances)');
}

/**
 * A plain JSON object serialized to at most `max` bytes. With `noSecrets`, fields named like key material
 * are refused: the audit log must never hold a key, even by mistake.
 */
export function jsonObject(v: unknown, field: string, max: number, noSecrets = false): string {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) bad(field, 'expected a JSON object');
  checkJson(v, field, 0, !noSecrets);
  const s = JSON.stringify(v as JsonObject);
  if (Buffer.byteLength(s) > max) bad(field, 'JSON object too large');
  return s;
}

export function optional<T>(v: T | null | undefined, f: (x: T) => T): T | null {
  return v === undefined || v === null ? null : f(v);
}

/** A validated audit row, ready for any backend's INSERT (JSON detail serialized). */
export interface AuditValues {
  readonly at: number;
  readonly actor: string;
  readonly action: string;
  readonly sgId: string | null;
  readonly subject: string | null;
  readonly epoch: number | null;
  readonly reason: string | null;
  readonly detail: string | null;
}

/**
 * An audit entry as appendAudit takes it, validated; `at` is the caller's or `now`. Every method that writes
 * an audit row (appendAudit, and the audit options of rotateGroupKey, createGroup, deleteGroup, removeMember)
 * goes through here, so they all refuse the same inputs (and key material, always).
 */
export function auditEntry(e: NewAuditEntry, now: number): AuditValues {
  if (typeof e !== 'object' || e === null) bad('audit', 'expected an audit entry');
  return {
    actor: text(e.actor, 'actor', 256),
    action: action(e.action),
    sgId: optional(e.sgId, (x) => sgId(x)),
    subject: optional(e.subject, (x) => text(x, 'subject', 256)),
    epoch: optional(e.epoch, (x) => int(x, 'epoch', 0, MAX_EPOCH)),
    reason: optional(e.reason, (x) => text(x, 'reason', 256)),
    detail:
      e.detail === undefined || e.detail === null
        ? null
        : jsonObject(e.detail, 'detail', MAX_DETAIL_JSON, true),
    at: e.at === undefined ? now : time(e.at, 'at'),
  };
}

/**
 * rotateGroupKey's mandatory audit entry, validated before any query; sgId and at are known, the epoch is
 * filled in by the backend (`{ ...values, epoch }`) once allocated. Only key.create / key.update: every
 * committed epoch has exactly one row with one of these actions.
 */
export function keyAudit(a: KeyAudit | undefined, id: string, at: number): AuditValues {
  if (typeof a !== 'object' || a === null) bad('audit', 'a key rotation must carry its audit entry');
  if (!KEY_AUDIT_ACTIONS.includes(a.action)) bad('action', "expected 'key.create' or 'key.update'");
  return auditEntry(
    {
      actor: a.actor,
      action: a.action,
      sgId: id,
      subject: a.subject,
      reason: a.reason,
      detail: a.detail,
      at,
    },
    at,
  );
}

/** The audit entries of createGroup / deleteGroup / removeMember: sgId and at are the store's. */
export function groupAudits(list: readonly GroupAudit[] | undefined, id: string, at: number): AuditValues[] {
  if (list === undefined) return [];
  if (!Array.isArray(list) || list.length > MAX_ATTACHED_AUDIT) bad('audit', 'expected a bounded list');
  return list.map((a: GroupAudit) => {
    if (typeof a !== 'object' || a === null) bad('audit', 'expected an audit entry');
    const other = (a as NewAuditEntry).sgId;
    if (other !== undefined && other !== null && other !== id) bad('sgId', 'audit entry names another group');
    return auditEntry({ ...a, sgId: id, at }, at);
  });
}

/** createGroup's initial members: PNE ids, deduplicated, bounded. */
export function initialMembers(v: unknown, field = 'members'): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.length > MAX_INITIAL_MEMBERS) bad(field, 'expected a bounded array of PNE ids');
  return [...new Set(v.map((x) => pneId(x, field)))];
}

export function outboxLimit(v: unknown): number {
  return v === undefined ? DEFAULT_OUTBOX_LIMIT : int(v, 'limit', 1, MAX_OUTBOX_BATCH);
}

/** At most MAX_OUTBOX_BATCH positive integer seqs (checked before any query). */
export function outboxSeqs(v: unknown): number[] {
  if (!Array.isArray(v)) throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'seqs must be an array', 'seqs');
  if (v.length > MAX_OUTBOX_BATCH) throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'too many seqs', 'seqs');
  return v.map((x) => int(x, 'seqs', 1, Number.MAX_SAFE_INTEGER));
}

/** Outbox rows one state-changing call may carry. */
export const MAX_OUTBOX_WRITES = 8;
/** Largest outbox row body, encoded (the event bus refuses bigger events: EVENT_LIMITS.maxEventBytes). */
export const MAX_OUTBOX_BODY_JSON = 16 * 1024;
const OUTBOX_KIND_RE = /^[a-z][a-z0-9_.-]{0,63}$/;

/** The outbox rows of a change: bounded list, token kinds, JSON object bodies of bounded size (before any query). */
export function outboxWrites(list: unknown): { kind: string; body: string }[] {
  if (list === undefined) return [];
  if (!Array.isArray(list) || list.length > MAX_OUTBOX_WRITES) bad('outbox', 'expected a bounded list');
  return list.map((w: unknown) => {
    const o = w as { kind?: unknown; body?: unknown } | null;
    if (typeof o !== 'object' || o === null) bad('outbox', 'expected an outbox row');
    if (typeof o.kind !== 'string' || !OUTBOX_KIND_RE.test(o.kind)) bad('kind', 'expected an event kind');
    if (typeof o.body !== 'object' || o.body === null || Array.isArray(o.body))
      bad('body', 'expected an object');
    const body = JSON.stringify(o.body);
    if (body.length > MAX_OUTBOX_BODY_JSON) bad('body', 'outbox row too large');
    return { kind: o.kind, body };
  });
}

/** A cluster node id (docs/cluster.md): as the event bus's durable consumer names allow. */
export function clusterNodeId(v: unknown, field = 'nodeId'): string {
  if (typeof v !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/.test(v)) bad(field, 'expected a node id');
  return v;
}

/** A listAudit query, validated: its WHERE conditions (column, operator, value; columns are constants), order, limit. */
export interface CheckedAuditQuery {
  readonly conditions: readonly (readonly [string, '=' | '>' | '<', string | number])[];
  readonly desc: boolean;
  readonly limit: number;
}

/** Validates a listAudit query for either backend (filters exact, cursors bounds, order asc or desc). */
export function auditQuery(q: AuditQuery): CheckedAuditQuery {
  if (typeof q !== 'object' || q === null) bad('query', 'expected an audit query');
  const limit = q.limit === undefined ? DEFAULT_AUDIT_LIMIT : int(q.limit, 'limit', 1, MAX_AUDIT_LIMIT);
  if (q.order !== undefined && q.order !== 'asc' && q.order !== 'desc')
    bad('order', "expected 'asc' or 'desc'");
  const conditions: [string, '=' | '>' | '<', string | number][] = [];
  if (q.afterSeq !== undefined)
    conditions.push(['seq', '>', int(q.afterSeq, 'afterSeq', 0, Number.MAX_SAFE_INTEGER)]);
  if (q.beforeSeq !== undefined)
    conditions.push(['seq', '<', int(q.beforeSeq, 'beforeSeq', 1, Number.MAX_SAFE_INTEGER)]);
  if (q.sgId !== undefined) conditions.push(['sg_id', '=', sgId(q.sgId)]);
  if (q.action !== undefined) conditions.push(['action', '=', action(q.action)]);
  if (q.actor !== undefined) conditions.push(['actor', '=', text(q.actor, 'actor', 256)]);
  if (q.subject !== undefined) conditions.push(['subject', '=', text(q.subject, 'subject', 256)]);
  return { conditions, desc: q.order === 'desc', limit };
}

/** A page from up to limit + 1 rows in the query's order: the extra row only says that another page exists. */
export function auditPage(rows: readonly AuditEntry[], q: CheckedAuditQuery): AuditPage {
  const more = rows.length > q.limit;
  const entries = rows.slice(0, q.limit);
  const cursor = more ? entries[entries.length - 1]!.seq : null;
  return { entries, nextAfterSeq: q.desc ? null : cursor, nextBeforeSeq: q.desc ? cursor : null };
}
