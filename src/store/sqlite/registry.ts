/** Identities (certificates, revocation) and one-time enrollment tokens. */
import { StoreError } from '../errors.js';
import type {
  ConsumeTokenResult,
  EnrollmentToken,
  Identity,
  NewEnrollmentToken,
  NewIdentity,
  OutboxWrite,
  Role,
} from '../store.js';
import * as v from '../validate.js';
import { type Ctx, tx } from './db.js';
import { insertOutboxRows } from './outbox.js';

interface IdentityRow {
  id: string;
  role: Role;
  cert_serial: string;
  cert_pem: string;
  created_at: number;
  revoked_at: number | null;
}

const toIdentity = (r: IdentityRow): Identity => ({
  id: r.id,
  role: r.role,
  certSerial: r.cert_serial,
  certPem: r.cert_pem,
  createdAt: r.created_at,
  revokedAt: r.revoked_at,
});

function readIdentity(ctx: Ctx, id: string): Identity | undefined {
  const r = ctx.db.prepare('SELECT * FROM identities WHERE id = ?').get(id) as IdentityRow | undefined;
  return r === undefined ? undefined : toIdentity(r);
}

/**
 * Creates the identity, or replaces the certificate of an existing one (renewal / re-enrollment). A revoked
 * identity stays revoked: CONFLICT. A serial already used by another identity, or ever revoked: CONFLICT.
 */
export function putIdentity(ctx: Ctx, i: NewIdentity): Identity {
  const role = v.role(i.role);
  const id = role === 'gw' ? v.gwId(i.id, 'id') : v.pneId(i.id, 'id');
  const serial = v.certSerial(i.certSerial);
  const pem = v.certPem(i.certPem);
  const createdAt = i.createdAt === undefined ? ctx.now() : v.time(i.createdAt, 'createdAt');
  return tx(ctx.db, () => {
    const old = readIdentity(ctx, id);
    if (old?.revokedAt != null) throw new StoreError('CONFLICT', 'identity is revoked', 'id');
    if (ctx.db.prepare('SELECT 1 FROM revoked_certs WHERE serial = ?').get(serial) !== undefined)
      throw new StoreError('CONFLICT', 'certificate serial was revoked', 'certSerial');
    const holder = ctx.db.prepare('SELECT id FROM identities WHERE cert_serial = ?').get(serial) as
      | { id: string }
      | undefined;
    if (holder !== undefined && holder.id !== id)
      throw new StoreError('CONFLICT', 'certificate serial belongs to another identity', 'certSerial');
    if (old === undefined) {
      ctx.db
        .prepare(
          'INSERT INTO identities (id, role, cert_serial, cert_pem, created_at) VALUES (?, ?, ?, ?, ?)',
        )
        .run(id, role, serial, pem, createdAt);
    } else {
      ctx.db.prepare('UPDATE identities SET cert_serial = ?, cert_pem = ? WHERE id = ?').run(serial, pem, id);
    }
    return readIdentity(ctx, id)!;
  });
}

export function getIdentity(ctx: Ctx, id: string): Identity | undefined {
  v.nodeId(id);
  return readIdentity(ctx, id);
}

export function listIdentities(ctx: Ctx, role?: Role): Identity[] {
  const rows = (
    role === undefined
      ? ctx.db.prepare('SELECT * FROM identities ORDER BY id').all()
      : ctx.db.prepare('SELECT * FROM identities WHERE role = ? ORDER BY id').all(v.role(role))
  ) as IdentityRow[];
  return rows.map(toIdentity);
}

export function revokeIdentity(
  ctx: Ctx,
  id: string,
  at?: number,
  opts: { readonly outbox?: readonly OutboxWrite[] } = {},
): Identity {
  v.nodeId(id);
  const when = at === undefined ? ctx.now() : v.time(at, 'at');
  const out = v.outboxWrites(opts.outbox);
  return tx(ctx.db, () => {
    const cur = readIdentity(ctx, id);
    if (cur === undefined) throw new StoreError('NOT_FOUND', 'no such identity', 'id');
    if (cur.revokedAt === null) {
      ctx.db.prepare('UPDATE identities SET revoked_at = ? WHERE id = ?').run(when, id);
      ctx.db
        .prepare('INSERT OR IGNORE INTO revoked_certs (serial, id, revoked_at) VALUES (?, ?, ?)')
        .run(cur.certSerial, id, when);
    }
    insertOutboxRows(ctx, when, out); // also when already revoked: a retry after a lost event announces it again
    return readIdentity(ctx, id)!;
  });
}

export function isRevoked(ctx: Ctx, ref: string): boolean {
  if (typeof ref === 'string' && ref.startsWith('urn:')) {
    v.nodeId(ref, 'ref');
    const r = ctx.db.prepare('SELECT revoked_at FROM identities WHERE id = ?').get(ref) as
      | { revoked_at: number | null }
      | undefined;
    return r?.revoked_at != null;
  }
  const serial = v.certSerial(ref, 'ref');
  return ctx.db.prepare('SELECT 1 FROM revoked_certs WHERE serial = ?').get(serial) !== undefined;
}

// ---------------------------------------------------------------- enrollment tokens

interface TokenRow {
  token_hash: string;
  role: Role;
  label: string | null;
  created_at: number;
  expires_at: number;
  used_at: number | null;
}

const toToken = (r: TokenRow): EnrollmentToken => ({
  tokenHash: r.token_hash,
  role: r.role,
  label: r.label,
  createdAt: r.created_at,
  expiresAt: r.expires_at,
  usedAt: r.used_at,
});

export function createToken(ctx: Ctx, t: NewEnrollmentToken): EnrollmentToken {
  const hash = v.tokenHash(t.tokenHash);
  const role = v.role(t.role);
  const ttl = v.int(t.ttlSec, 'ttlSec', 1, v.MAX_TOKEN_TTL_SEC);
  const label = v.optional(t.label, (x) => v.text(x, 'label', 128));
  const now = t.now === undefined ? ctx.now() : v.time(t.now, 'now');
  ctx.db
    .prepare(
      'INSERT INTO enrollment_tokens (token_hash, role, label, created_at, expires_at) VALUES (?, ?, ?, ?, ?)',
    )
    .run(hash, role, label, now, now + ttl * 1000);
  return { tokenHash: hash, role, label, createdAt: now, expiresAt: now + ttl * 1000, usedAt: null };
}

/** One conditional UPDATE decides: at most one caller ever sees `changes === 1` for a token. */
export function consumeToken(ctx: Ctx, tokenHash: string, role: Role, now?: number): ConsumeTokenResult {
  const hash = v.tokenHash(tokenHash);
  const r = v.role(role);
  const when = now === undefined ? ctx.now() : v.time(now, 'now');
  return tx(ctx.db, () => {
    const res = ctx.db
      .prepare(
        `UPDATE enrollment_tokens SET used_at = ?
         WHERE token_hash = ? AND role = ? AND used_at IS NULL AND expires_at > ?`,
      )
      .run(when, hash, r, when);
    const row = ctx.db.prepare('SELECT * FROM enrollment_tokens WHERE token_hash = ?').get(hash) as
      | TokenRow
      | undefined;
    if (res.changes === 1 && row !== undefined) return { ok: true, token: toToken(row) };
    if (row === undefined) return { ok: false, reason: 'unknown' };
    if (row.used_at !== null) return { ok: false, reason: 'used' };
    if (row.role !== r) return { ok: false, reason: 'wrong_role' };
    return { ok: false, reason: 'expired' };
  });
}

export function purgeExpiredTokens(ctx: Ctx, now?: number): number {
  const when = now === undefined ? ctx.now() : v.time(now, 'now');
  return ctx.db.prepare('DELETE FROM enrollment_tokens WHERE expires_at <= ?').run(when).changes;
}
