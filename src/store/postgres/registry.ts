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
import { all, type Ctx, one, type Queryable, run, tx } from './db.js';
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

async function readIdentity(q: Queryable, id: string, lock = false): Promise<Identity | undefined> {
  const r = await one<IdentityRow>(q, `SELECT * FROM identities WHERE id = $1${lock ? ' FOR UPDATE' : ''}`, [
    id,
  ]);
  return r === undefined ? undefined : toIdentity(r);
}

/**
 * Creates the identity, or replaces the certificate of an existing one (renewal / re-enrollment). A revoked
 * identity stays revoked: CONFLICT. A serial already used by another identity, or ever revoked: CONFLICT.
 * Concurrent puts of one serial race on the UNIQUE constraint: the loser is CONFLICT too.
 */
export async function putIdentity(ctx: Ctx, i: NewIdentity): Promise<Identity> {
  const role = v.role(i.role);
  const id = role === 'gw' ? v.gwId(i.id, 'id') : v.pneId(i.id, 'id');
  const serial = v.certSerial(i.certSerial);
  const pem = v.certPem(i.certPem);
  const createdAt = i.createdAt === undefined ? ctx.now() : v.time(i.createdAt, 'createdAt');
  return tx(ctx, async (c) => {
    const old = await readIdentity(c, id, true);
    if (old?.revokedAt != null) throw new StoreError('CONFLICT', 'identity is revoked', 'id');
    if ((await one(c, 'SELECT 1 FROM revoked_certs WHERE serial = $1', [serial])) !== undefined)
      throw new StoreError('CONFLICT', 'certificate serial was revoked', 'certSerial');
    const holder = await one<{ id: string }>(c, 'SELECT id FROM identities WHERE cert_serial = $1', [serial]);
    if (holder !== undefined && holder.id !== id)
      throw new StoreError('CONFLICT', 'certificate serial belongs to another identity', 'certSerial');
    if (old === undefined) {
      await run(
        c,
        'INSERT INTO identities (id, role, cert_serial, cert_pem, created_at) VALUES ($1, $2, $3, $4, $5)',
        [id, role, serial, pem, createdAt],
      );
    } else {
      await run(c, 'UPDATE identities SET cert_serial = $1, cert_pem = $2 WHERE id = $3', [serial, pem, id]);
    }
    return (await readIdentity(c, id))!;
  });
}

export async function getIdentity(ctx: Ctx, id: string): Promise<Identity | undefined> {
  v.nodeId(id);
  return readIdentity(ctx.pool, id);
}

export async function listIdentities(ctx: Ctx, role?: Role): Promise<Identity[]> {
  const rows =
    role === undefined
      ? await all<IdentityRow>(ctx.pool, 'SELECT * FROM identities ORDER BY id')
      : await all<IdentityRow>(ctx.pool, 'SELECT * FROM identities WHERE role = $1 ORDER BY id', [
          v.role(role),
        ]);
  return rows.map(toIdentity);
}

export async function revokeIdentity(
  ctx: Ctx,
  id: string,
  at?: number,
  opts: { readonly outbox?: readonly OutboxWrite[] } = {},
): Promise<Identity> {
  v.nodeId(id);
  const when = at === undefined ? ctx.now() : v.time(at, 'at');
  const out = v.outboxWrites(opts.outbox);
  return tx(ctx, async (c) => {
    const cur = await readIdentity(c, id, true);
    if (cur === undefined) throw new StoreError('NOT_FOUND', 'no such identity', 'id');
    if (cur.revokedAt === null) {
      await run(c, 'UPDATE identities SET revoked_at = $1 WHERE id = $2', [when, id]);
      await run(
        c,
        'INSERT INTO revoked_certs (serial, id, revoked_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING',
        [cur.certSerial, id, when],
      );
    }
    await insertOutboxRows(c, when, out); // also when already revoked: a retry after a lost event announces it again
    return (await readIdentity(c, id))!;
  });
}

export async function isRevoked(ctx: Ctx, ref: string): Promise<boolean> {
  if (typeof ref === 'string' && ref.startsWith('urn:')) {
    v.nodeId(ref, 'ref');
    const r = await one<{ revoked_at: number | null }>(
      ctx.pool,
      'SELECT revoked_at FROM identities WHERE id = $1',
      [ref],
    );
    return r?.revoked_at != null;
  }
  const serial = v.certSerial(ref, 'ref');
  return (await one(ctx.pool, 'SELECT 1 FROM revoked_certs WHERE serial = $1', [serial])) !== undefined;
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

export async function createToken(ctx: Ctx, t: NewEnrollmentToken): Promise<EnrollmentToken> {
  const hash = v.tokenHash(t.tokenHash);
  const role = v.role(t.role);
  const ttl = v.int(t.ttlSec, 'ttlSec', 1, v.MAX_TOKEN_TTL_SEC);
  const label = v.optional(t.label, (x) => v.text(x, 'label', 128));
  const now = t.now === undefined ? ctx.now() : v.time(t.now, 'now');
  await run(
    ctx.pool,
    'INSERT INTO enrollment_tokens (token_hash, role, label, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)',
    [hash, role, label, now, now + ttl * 1000],
  );
  return { tokenHash: hash, role, label, createdAt: now, expiresAt: now + ttl * 1000, usedAt: null };
}

/**
 * One conditional UPDATE ... RETURNING decides: it takes the token row's lock, and a concurrent consumer (on any
 * node) waiting on that lock re-checks `used_at IS NULL` on the committed row and updates nothing. So exactly
 * one caller ever gets the row back.
 */
export async function consumeToken(
  ctx: Ctx,
  tokenHash: string,
  role: Role,
  now?: number,
): Promise<ConsumeTokenResult> {
  const hash = v.tokenHash(tokenHash);
  const r = v.role(role);
  const when = now === undefined ? ctx.now() : v.time(now, 'now');
  const won = await one<TokenRow>(
    ctx.pool,
    `UPDATE enrollment_tokens SET used_at = $1
     WHERE token_hash = $2 AND role = $3 AND used_at IS NULL AND expires_at > $1
     RETURNING *`,
    [when, hash, r],
  );
  if (won !== undefined) return { ok: true, token: toToken(won) };
  const row = await one<TokenRow>(ctx.pool, 'SELECT * FROM enrollment_tokens WHERE token_hash = $1', [hash]);
  if (row === undefined) return { ok: false, reason: 'unknown' };
  if (row.used_at !== null) return { ok: false, reason: 'used' };
  if (row.role !== r) return { ok: false, reason: 'wrong_role' };
  return { ok: false, reason: 'expired' };
}

export async function purgeExpiredTokens(ctx: Ctx, now?: number): Promise<number> {
  const when = now === undefined ? ctx.now() : v.time(now, 'now');
  return run(ctx.pool, 'DELETE FROM enrollment_tokens WHERE expires_at <= $1', [when]);
}
