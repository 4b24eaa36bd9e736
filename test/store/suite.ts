/**
 * The one behavioural test suite of the Store interface. Every backend runs it against a real database:
 *   runStoreSuite('sqlite file', fileHarness, caps)   // test/store/sqlite.test.ts
 *   runStoreSuite('postgres', harness, caps)          // test/store/postgres.test.ts (one schema per harness)
 * Nothing here is backend-specific: raw SQL uses `?` placeholders and the mirrored table names, and what one
 * backend cannot do is a capability flag (BackendCapabilities).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Suite } from '../../src/core/crypto/aead.js';
import { hashToken } from '../../src/store/index.js';
import type { GroupAudit, KeyAudit, NewServiceGroup, RotateOptions, Store } from '../../src/store/store.js';

export interface StoreHarness {
  /** Opens a store on this harness's database (the same database on every call, when persistent). */
  open(opts?: { masterKey?: Buffer }): Promise<Store>;
  /** Raw SQL on the store's database, bypassing the store; `?` placeholders, mirrored table names. */
  raw(store: Store, sql: string, params?: unknown[]): Promise<Record<string, unknown>[]>;
  /** Every byte the backend keeps for this database (main file, WAL...), for at-rest checks. */
  bytes(store: Store): Promise<Buffer>;
  /**
   * Makes every INSERT into audit_log on this store's connection fail in the database (SQLite: a TEMP trigger;
   * PostgreSQL: a trigger raising an exception), after validation has passed: proves that a state change and
   * its audit row share one transaction. Returns the undo.
   */
  failAuditInserts(store: Store): Promise<() => Promise<void>>;
  cleanup(): Promise<void>;
}

/** A fresh, empty database per call (one per test). */
export type HarnessFactory = () => Promise<StoreHarness>;

export interface BackendCapabilities {
  /** close() + open() keeps the data (false for in-memory databases). */
  readonly persistent: boolean;
  /** A second connection may be opened on the same database while the first is open. */
  readonly multiConnection: boolean;
}

export const gwId = (): string => `urn:cpns:gw:${randomUUID()}`;
export const pneId = (): string => `urn:cpns:pne:${randomUUID()}`;
const PEM = '-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n';

function group(over: Partial<NewServiceGroup> = {}): NewServiceGroup {
  return {
    name: 'family sensors',
    ownerId: 'operator',
    joinPolicy: 'open',
    suite: Suite.AES_256_GCM,
    sourceAuth: false,
    ...over,
  };
}

/** rotateGroupKey's mandatory audit entry. */
const MIGRATION_COUNT = 5;
const KC = { audit: { actor: 'server', action: 'key.create' } } as const;
const KU = { audit: { actor: 'server', action: 'key.update' } } as const;

async function rejectsStore(p: Promise<unknown>, code: string): Promise<void> {
  await expect(p).rejects.toMatchObject({ name: 'StoreError', code });
}

async function rejectsInvalid(p: Promise<unknown>, field: string): Promise<void> {
  await expect(p).rejects.toMatchObject({ name: 'CpnsError', code: 'INVALID_ARGUMENT', field });
}

export function runStoreSuite(name: string, factory: HarnessFactory, caps: BackendCapabilities): void {
  describe(`Store: ${name}`, () => {
    let h: StoreHarness;
    let s: Store;

    beforeEach(async () => {
      h = await factory();
      s = await h.open();
    });

    afterEach(async () => {
      await s.close();
      await h.cleanup();
    });

    async function reopen(opts?: { masterKey?: Buffer }): Promise<Store> {
      await s.close();
      s = await h.open(opts);
      return s;
    }

    // ------------------------------------------------------------ migrations & persistence

    describe('migrations and persistence', () => {
      it('records applied migrations once', async () => {
        const rows = await h.raw(s, 'SELECT version, name FROM schema_migrations ORDER BY version');
        expect(rows.map((r) => r.version)).toEqual([1, 2, 3, 4, 5]);
        expect(rows.map((r) => r.name)).toEqual([
          'initial',
          'update-on-join',
          'outbox',
          'gw-leases',
          'admin-tokens',
        ]);
      });

      it.runIf(caps.persistent)('reopen applies nothing and keeps every kind of data', async () => {
        const gw = gwId();
        const pne = pneId();
        const pne2 = pneId();
        const g = await s.createGroup(group({ joinPolicy: 'invite', deliveryPolicy: { broadcastMin: 3 } }));
        await s.addMember(g.sgId, pne);
        await s.invite(g.sgId, pne2);
        const k1 = randomBytes(32);
        const k2 = randomBytes(32);
        await s.rotateGroupKey(g.sgId, k1, 'create', KC);
        await s.rotateGroupKey(g.sgId, k2, 'manual', KU);
        await s.registerGateway(gw);
        await s.attachPne(pne, gw, ['wifi']);
        await s.putIdentity({ id: pne2, role: 'pne', certSerial: 'AB01', certPem: PEM });
        await s.revokeIdentity(pne2);
        await s.createToken({ tokenHash: hashToken('t1'), role: 'gw', ttlSec: 60 });
        expect((await s.consumeToken(hashToken('t1'), 'gw')).ok).toBe(true);
        await s.putSecret('ca/key', Buffer.from('ca private key'));
        await s.appendAudit({ actor: 'operator', action: 'group.create', sgId: g.sgId });
        await s.createAdminToken({ name: 'kept', scope: 'read', tokenHash: hashToken('kept') });

        await reopen();
        const rows = await h.raw(s, 'SELECT version FROM schema_migrations');
        expect(rows).toHaveLength(MIGRATION_COUNT);
        expect(await s.getGroup(g.sgId)).toEqual({ ...g, epochHighWater: 2 });
        expect(await s.isMember(g.sgId, pne)).toBe(true);
        expect(await s.hasInvite(g.sgId, pne2)).toBe(true);
        expect((await s.getKey(g.sgId, 1))?.key.equals(k1)).toBe(true);
        const cur = await s.getCurrentKey(g.sgId);
        expect(cur?.epoch).toBe(2);
        expect(cur?.key.equals(k2)).toBe(true);
        const pns = await s.listPns();
        expect(pns).toHaveLength(1);
        expect(pns[0]?.pnes.map((p) => p.pneId)).toEqual([pne]);
        expect(await s.isRevoked(pne2)).toBe(true);
        expect(await s.isRevoked('ab01')).toBe(true);
        expect(await s.consumeToken(hashToken('t1'), 'gw')).toEqual({ ok: false, reason: 'used' });
        expect((await s.getSecret('ca/key'))?.toString()).toBe('ca private key');
        expect((await s.findAdminToken(hashToken('kept')))?.name).toBe('kept');
        expect((await s.listAudit()).entries).toHaveLength(3); // two key rotations + one appended
        // epochs continue from the high-water mark after reopen
        expect((await s.rotateGroupKey(g.sgId, randomBytes(32), 'periodic', KU)).epoch).toBe(3);
      });

      it.runIf(caps.persistent)('refuses a database newer than the code', async () => {
        await h.raw(
          s,
          'INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)',
          [99, 'future', 'x', 0],
        );
        await s.close();
        await rejectsStore(h.open(), 'SCHEMA_TOO_NEW');
      });

      it.runIf(caps.persistent)('refuses an edited migration', async () => {
        await h.raw(s, 'UPDATE schema_migrations SET checksum = ? WHERE version = 1', ['0'.repeat(64)]);
        await s.close();
        await rejectsStore(h.open(), 'MIGRATION_MISMATCH');
      });
    });

    // ------------------------------------------------------------ master key & encryption at rest

    describe('encryption at rest', () => {
      it.runIf(caps.persistent)('a wrong master key is a typed error at open, never garbage', async () => {
        const g = await s.createGroup(group());
        await s.rotateGroupKey(g.sgId, randomBytes(32), 'create', KC);
        await s.close();
        await rejectsStore(h.open({ masterKey: randomBytes(32) }), 'MASTER_KEY_MISMATCH');
        s = await h.open();
        expect((await s.getCurrentKey(g.sgId))?.epoch).toBe(1);
      });

      it('rejects a master key of the wrong size', async () => {
        await expect(h.open({ masterKey: randomBytes(16) })).rejects.toMatchObject({
          code: 'MASTER_KEY_INVALID',
        });
      });

      it('Group Keys, secrets and tokens are not stored in plaintext', async () => {
        const g = await s.createGroup(group());
        const keys: Buffer[] = [];
        for (let i = 0; i < 5; i++) {
          const k = randomBytes(32);
          keys.push(k);
          await s.rotateGroupKey(g.sgId, k, 'manual', KU);
        }
        const secret = randomBytes(48);
        await s.putSecret('ca/key', secret);
        const token = `tok-${randomBytes(16).toString('hex')}`;
        await s.createToken({ tokenHash: hashToken(token), role: 'pne', ttlSec: 60 });
        const bytes = await h.bytes(s);
        expect(bytes.length).toBeGreaterThan(0);
        // sanity: the reader does see the database content
        expect(bytes.includes(Buffer.from(g.sgId))).toBe(true);
        for (const k of keys) {
          expect(bytes.includes(k)).toBe(false);
          expect(bytes.includes(Buffer.from(k.toString('hex')))).toBe(false);
          expect(bytes.includes(Buffer.from(k.toString('base64')))).toBe(false);
        }
        expect(bytes.includes(secret)).toBe(false);
        expect(bytes.includes(Buffer.from(token))).toBe(false);
        const row = (await h.raw(s, 'SELECT key_ct, key_nonce FROM group_keys WHERE epoch = 1'))[0]!;
        expect((row.key_ct as Buffer).length).toBe(48);
        expect((row.key_nonce as Buffer).length).toBe(12);
      });

      it('nonces are fresh per row', async () => {
        const g = await s.createGroup(group());
        const k = randomBytes(32);
        await s.rotateGroupKey(g.sgId, k, 'create', KC);
        await s.rotateGroupKey(g.sgId, k, 'manual', KU);
        const rows = await h.raw(s, 'SELECT key_nonce, key_ct FROM group_keys ORDER BY epoch');
        expect((rows[0]!.key_nonce as Buffer).equals(rows[1]!.key_nonce as Buffer)).toBe(false);
        expect((rows[0]!.key_ct as Buffer).equals(rows[1]!.key_ct as Buffer)).toBe(false);
      });

      it('ciphertexts swapped between epochs fail to decrypt (AAD binds sgId and epoch)', async () => {
        const g = await s.createGroup(group());
        await s.rotateGroupKey(g.sgId, randomBytes(32), 'create', KC);
        await s.rotateGroupKey(g.sgId, randomBytes(32), 'manual', KU);
        const rows = await h.raw(
          s,
          'SELECT epoch, key_nonce, key_ct FROM group_keys WHERE sg_id = ? ORDER BY epoch',
          [g.sgId],
        );
        const [r1, r2] = rows as { epoch: number; key_nonce: Buffer; key_ct: Buffer }[];
        await h.raw(s, 'UPDATE group_keys SET key_nonce = ?, key_ct = ? WHERE sg_id = ? AND epoch = 1', [
          r2!.key_nonce,
          r2!.key_ct,
          g.sgId,
        ]);
        await h.raw(s, 'UPDATE group_keys SET key_nonce = ?, key_ct = ? WHERE sg_id = ? AND epoch = 2', [
          r1!.key_nonce,
          r1!.key_ct,
          g.sgId,
        ]);
        await rejectsStore(s.getKey(g.sgId, 1), 'STORE_CORRUPT');
        await rejectsStore(s.getKey(g.sgId, 2), 'STORE_CORRUPT');
        await rejectsStore(s.getCurrentKey(g.sgId), 'STORE_CORRUPT');
      });

      it('a ciphertext moved to another group, or a flipped bit, fails to decrypt', async () => {
        const a = await s.createGroup(group());
        const b = await s.createGroup(group());
        await s.rotateGroupKey(a.sgId, randomBytes(32), 'create', KC);
        await s.rotateGroupKey(b.sgId, randomBytes(32), 'create', KC);
        const [ra] = (await h.raw(s, 'SELECT key_nonce, key_ct FROM group_keys WHERE sg_id = ?', [
          a.sgId,
        ])) as {
          key_nonce: Buffer;
          key_ct: Buffer;
        }[];
        await h.raw(s, 'UPDATE group_keys SET key_nonce = ?, key_ct = ? WHERE sg_id = ?', [
          ra!.key_nonce,
          ra!.key_ct,
          b.sgId,
        ]);
        await rejectsStore(s.getKey(b.sgId, 1), 'STORE_CORRUPT');
        const flipped = Buffer.from(ra!.key_ct);
        flipped[0]! ^= 1;
        await h.raw(s, 'UPDATE group_keys SET key_ct = ? WHERE sg_id = ?', [flipped, a.sgId]);
        await rejectsStore(s.getKey(a.sgId, 1), 'STORE_CORRUPT');
      });

      it('secrets: put, overwrite, get, delete; swapped rows fail', async () => {
        await s.putSecret('ca/key', Buffer.from('one'));
        await s.putSecret('ca/key', Buffer.from('two'));
        await s.putSecret('gw/tree', Buffer.from('three'));
        expect((await s.getSecret('ca/key'))?.toString()).toBe('two');
        expect(await s.getSecret('nope')).toBeUndefined();
        const [t] = (await h.raw(s, "SELECT nonce, ct FROM secrets WHERE name = 'gw/tree'")) as {
          nonce: Buffer;
          ct: Buffer;
        }[];
        await h.raw(s, "UPDATE secrets SET nonce = ?, ct = ? WHERE name = 'ca/key'", [t!.nonce, t!.ct]);
        await rejectsStore(s.getSecret('ca/key'), 'STORE_CORRUPT');
        expect(await s.deleteSecret('gw/tree')).toBe(true);
        expect(await s.deleteSecret('gw/tree')).toBe(false);
        await rejectsInvalid(s.putSecret('Bad Name', Buffer.from('x')), 'name');
        await rejectsInvalid(s.putSecret('ok', Buffer.alloc(0)), 'value');
      });
    });

    // ------------------------------------------------------------ epochs

    describe('group keys and epochs', () => {
      it('epochs start at 1, increase by one, and the current key is the latest', async () => {
        const g = await s.createGroup(group());
        expect(g.epochHighWater).toBe(0);
        expect(await s.getCurrentKey(g.sgId)).toBeUndefined();
        const ks = [randomBytes(32), randomBytes(32), randomBytes(32)];
        const metas = [];
        for (const k of ks) metas.push(await s.rotateGroupKey(g.sgId, k, 'manual', { ...KU, at: 1000 }));
        expect(metas.map((m) => m.epoch)).toEqual([1, 2, 3]);
        expect(metas[0]).toEqual({
          sgId: g.sgId,
          epoch: 1,
          createdAt: 1000,
          reason: 'manual',
          activateAt: null,
        });
        const cur = await s.getCurrentKey(g.sgId);
        expect(cur?.epoch).toBe(3);
        expect(cur?.key.equals(ks[2]!)).toBe(true);
        expect((await s.getKey(g.sgId, 2))?.key.equals(ks[1]!)).toBe(true);
        expect(await s.getKey(g.sgId, 4)).toBeUndefined();
        expect((await s.getGroup(g.sgId))?.epochHighWater).toBe(3);
        const list = await s.listKeyEpochs(g.sgId);
        expect(list.map((m) => m.epoch)).toEqual([1, 2, 3]);
        expect(list.every((m) => !('key' in m))).toBe(true);
      });

      it('a pre-distributed key becomes current only at activateAt', async () => {
        const g = await s.createGroup(group());
        await s.rotateGroupKey(g.sgId, randomBytes(32), 'create', { ...KC, at: 0 });
        await s.rotateGroupKey(g.sgId, randomBytes(32), 'periodic', { ...KU, at: 0, activateAt: 5000 });
        expect((await s.getCurrentKey(g.sgId, 4999))?.epoch).toBe(1);
        expect((await s.getCurrentKey(g.sgId, 5000))?.epoch).toBe(2);
        expect((await s.getKey(g.sgId, 2))?.activateAt).toBe(5000);
      });

      it('50 concurrent rotations get 50 distinct consecutive epochs, each with its own key', async () => {
        const g = await s.createGroup(group());
        const ks = Array.from({ length: 50 }, () => randomBytes(32));
        const metas = await Promise.all(ks.map((k) => s.rotateGroupKey(g.sgId, k, 'manual', KU)));
        const epochs = metas.map((m) => m.epoch).sort((a, b) => a - b);
        expect(epochs).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
        for (let i = 0; i < 50; i++) {
          const got = await s.getKey(g.sgId, metas[i]!.epoch);
          expect(got?.key.equals(ks[i]!)).toBe(true);
        }
        expect((await s.getGroup(g.sgId))?.epochHighWater).toBe(50);
      });

      it.runIf(caps.multiConnection)(
        'two connections rotating one group never allocate the same epoch',
        async () => {
          const g = await s.createGroup(group());
          const other = await h.open();
          try {
            const calls = [];
            for (let i = 0; i < 40; i++)
              calls.push((i % 2 ? s : other).rotateGroupKey(g.sgId, randomBytes(32), 'manual', KU));
            const epochs = (await Promise.all(calls)).map((m) => m.epoch).sort((a, b) => a - b);
            expect(epochs).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
          } finally {
            await other.close();
          }
        },
      );

      it('pruning keys never lowers the high-water mark', async () => {
        const g = await s.createGroup(group());
        for (let i = 0; i < 5; i++) await s.rotateGroupKey(g.sgId, randomBytes(32), 'manual', KU);
        expect(await s.pruneKeys(g.sgId, 5)).toBe(4);
        expect(await s.getKey(g.sgId, 4)).toBeUndefined();
        expect((await s.listKeyEpochs(g.sgId)).map((m) => m.epoch)).toEqual([5]);
        expect((await s.rotateGroupKey(g.sgId, randomBytes(32), 'manual', KU)).epoch).toBe(6);
        // even pruning everything keeps the counter
        await s.pruneKeys(g.sgId, 100);
        expect(await s.getCurrentKey(g.sgId)).toBeUndefined();
        expect((await s.rotateGroupKey(g.sgId, randomBytes(32), 'manual', KU)).epoch).toBe(7);
      });

      it('a deleted group id is retired: recreating it is refused, so epochs are never reused', async () => {
        const g = await s.createGroup(group());
        await s.rotateGroupKey(g.sgId, randomBytes(32), 'create', KC);
        const del = await s.deleteGroup(g.sgId);
        expect(del.epochHighWater).toBe(1);
        await rejectsStore(s.createGroup(group({ sgId: g.sgId })), 'GROUP_RETIRED');
        await rejectsStore(s.rotateGroupKey(g.sgId, randomBytes(32), 'manual', KU), 'NOT_FOUND');
      });

      it('rotation validates its input', async () => {
        const g = await s.createGroup(group());
        await rejectsInvalid(s.rotateGroupKey(g.sgId, randomBytes(16), 'manual', KU), 'key');
        await rejectsInvalid(s.rotateGroupKey(g.sgId, randomBytes(32), 'Not A Reason', KU), 'reason');
        await rejectsInvalid(s.getKey(g.sgId, 0), 'epoch');
        await rejectsInvalid(s.getKey(g.sgId, 2 ** 32), 'epoch');
        await rejectsStore(s.rotateGroupKey(randomUUID(), randomBytes(32), 'manual', KU), 'NOT_FOUND');
      });
    });

    // ------------------------------------------------------------ identities & tokens

    describe('identities and revocation', () => {
      it('put, renew, list, revoke by id and by serial', async () => {
        const gw = gwId();
        const pne = pneId();
        const a = await s.putIdentity({
          id: gw,
          role: 'gw',
          certSerial: '00AbC1',
          certPem: PEM,
          createdAt: 5,
        });
        expect(a).toEqual({
          id: gw,
          role: 'gw',
          certSerial: 'abc1',
          certPem: PEM,
          createdAt: 5,
          revokedAt: null,
        });
        await s.putIdentity({ id: pne, role: 'pne', certSerial: '02', certPem: PEM });
        expect((await s.listIdentities()).map((i) => i.id).sort()).toEqual([gw, pne].sort());
        expect((await s.listIdentities('pne')).map((i) => i.id)).toEqual([pne]);
        // renewal replaces the certificate, keeps createdAt
        const renewed = await s.putIdentity({ id: gw, role: 'gw', certSerial: 'abc2', certPem: PEM });
        expect(renewed.certSerial).toBe('abc2');
        expect(renewed.createdAt).toBe(5);
        expect(await s.isRevoked(gw)).toBe(false);
        const r = await s.revokeIdentity(gw, 777);
        expect(r.revokedAt).toBe(777);
        expect((await s.revokeIdentity(gw, 999)).revokedAt).toBe(777); // idempotent
        expect(await s.isRevoked(gw)).toBe(true);
        expect(await s.isRevoked('ABC2')).toBe(true);
        expect(await s.isRevoked('0abc2')).toBe(true);
        expect(await s.isRevoked('abc1')).toBe(false); // superseded, not revoked
        expect(await s.isRevoked(pne)).toBe(false);
        expect(await s.isRevoked(pneId())).toBe(false);
        // a revoked identity cannot be re-enrolled under the same id
        await rejectsStore(
          s.putIdentity({ id: gw, role: 'gw', certSerial: 'abc3', certPem: PEM }),
          'CONFLICT',
        );
        // nor can a revoked serial come back
        await rejectsStore(
          s.putIdentity({ id: gwId(), role: 'gw', certSerial: 'abc2', certPem: PEM }),
          'CONFLICT',
        );
        await rejectsStore(s.revokeIdentity(gwId()), 'NOT_FOUND');
      });

      it('a certificate serial belongs to one identity', async () => {
        await s.putIdentity({ id: gwId(), role: 'gw', certSerial: '10', certPem: PEM });
        await rejectsStore(
          s.putIdentity({ id: pneId(), role: 'pne', certSerial: '10', certPem: PEM }),
          'CONFLICT',
        );
      });

      it('validates identities', async () => {
        await rejectsInvalid(s.putIdentity({ id: pneId(), role: 'gw', certSerial: '1', certPem: PEM }), 'id');
        await rejectsInvalid(
          s.putIdentity({ id: gwId(), role: 'gw', certSerial: 'xyz', certPem: PEM }),
          'certSerial',
        );
        await rejectsInvalid(
          s.putIdentity({ id: gwId(), role: 'gw', certSerial: '1', certPem: 'nope' }),
          'certPem',
        );
        await rejectsInvalid(
          s.putIdentity({ id: gwId(), role: 'admin' as 'gw', certSerial: '1', certPem: PEM }),
          'role',
        );
        await rejectsInvalid(s.isRevoked('urn:cpns:gw:not-a-uuid'), 'ref');
        await rejectsInvalid(s.isRevoked("1' OR '1'='1"), 'ref');
      });
    });

    describe('enrollment tokens', () => {
      const T0 = 1_000_000;

      it('single use, expiry, role, unknown', async () => {
        const h1 = hashToken('token-1');
        const tok = await s.createToken({ tokenHash: h1, role: 'pne', ttlSec: 60, label: 'tv', now: T0 });
        expect(tok).toEqual({
          tokenHash: h1,
          role: 'pne',
          label: 'tv',
          createdAt: T0,
          expiresAt: T0 + 60_000,
          usedAt: null,
        });
        expect(await s.consumeToken(h1, 'gw', T0 + 1)).toEqual({ ok: false, reason: 'wrong_role' });
        const ok = await s.consumeToken(h1, 'pne', T0 + 1);
        expect(ok.ok && ok.token.usedAt).toBe(T0 + 1);
        expect(await s.consumeToken(h1, 'pne', T0 + 2)).toEqual({ ok: false, reason: 'used' });

        const h2 = hashToken('token-2');
        await s.createToken({ tokenHash: h2, role: 'gw', ttlSec: 60, now: T0 });
        expect(await s.consumeToken(h2, 'gw', T0 + 60_000)).toEqual({ ok: false, reason: 'expired' });
        expect(await s.consumeToken(hashToken('nope'), 'gw', T0)).toEqual({ ok: false, reason: 'unknown' });
        await rejectsStore(s.createToken({ tokenHash: h2, role: 'gw', ttlSec: 60 }), 'CONFLICT');
        expect(await s.purgeExpiredTokens(T0 + 60_000)).toBe(2);
      });

      it('exactly one of many concurrent consumers wins', async () => {
        const th = hashToken('race');
        await s.createToken({ tokenHash: th, role: 'gw', ttlSec: 60 });
        const res = await Promise.all(Array.from({ length: 20 }, () => s.consumeToken(th, 'gw')));
        expect(res.filter((r) => r.ok)).toHaveLength(1);
      });

      it('validates tokens', async () => {
        await rejectsInvalid(
          s.createToken({ tokenHash: 'plain-token', role: 'gw', ttlSec: 60 }),
          'tokenHash',
        );
        await rejectsInvalid(s.createToken({ tokenHash: hashToken('x'), role: 'gw', ttlSec: 0 }), 'ttlSec');
        await rejectsInvalid(
          s.createToken({ tokenHash: hashToken('x'), role: 'gw', ttlSec: 31 * 86400 }),
          'ttlSec',
        );
        await rejectsInvalid(s.consumeToken(hashToken('x').toUpperCase(), 'gw'), 'tokenHash');
      });
    });

    describe('admin tokens', () => {
      const T0 = 2_000_000;

      it('created, found by hash, listed, revoked; names never reused; audit in the same transaction', async () => {
        const h1 = hashToken('admin-1');
        const audit = [{ actor: 'operator:root', action: 'admin-token.create', subject: 'ci-read' }];
        expect(
          await s.createAdminToken({ name: 'ci-read', scope: 'read', tokenHash: h1, now: T0 }, { audit }),
        ).toEqual({ name: 'ci-read', scope: 'read', createdAt: T0, revokedAt: null });
        expect(await s.findAdminToken(h1)).toEqual({
          name: 'ci-read',
          scope: 'read',
          createdAt: T0,
          revokedAt: null,
        });
        expect(await s.findAdminToken(hashToken('other'))).toBeUndefined();
        await s.createAdminToken({
          name: 'alice',
          scope: 'operator',
          tokenHash: hashToken('admin-2'),
          now: T0,
        });
        expect((await s.listAdminTokens()).map((t) => t.name)).toEqual(['alice', 'ci-read']);
        const revoked = await s.revokeAdminToken('ci-read', T0 + 5, {
          audit: [{ actor: 'operator:root', action: 'admin-token.revoke', subject: 'ci-read' }],
        });
        expect(revoked.revokedAt).toBe(T0 + 5);
        // revoking again keeps the first time; the hash still resolves (the caller refuses revoked tokens)
        expect((await s.revokeAdminToken('ci-read', T0 + 9)).revokedAt).toBe(T0 + 5);
        expect((await s.findAdminToken(h1))?.revokedAt).toBe(T0 + 5);
        // a revoked name is never reused, nor a hash
        await rejectsStore(
          s.createAdminToken({ name: 'ci-read', scope: 'read', tokenHash: hashToken('admin-3') }),
          'CONFLICT',
        );
        await rejectsStore(s.createAdminToken({ name: 'bob', scope: 'read', tokenHash: h1 }), 'CONFLICT');
        await rejectsStore(s.revokeAdminToken('nobody'), 'NOT_FOUND');
        const page = await s.listAudit({});
        expect(page.entries.map((e) => e.action)).toEqual(['admin-token.create', 'admin-token.revoke']);
      });

      it('validates names, scopes and hashes before any write', async () => {
        const t = { name: 'ok', scope: 'read' as const, tokenHash: hashToken('v') };
        await rejectsInvalid(s.createAdminToken({ ...t, name: 'Upper' }), 'name');
        await rejectsInvalid(s.createAdminToken({ ...t, name: 'a'.repeat(64) }), 'name');
        await s.createAdminToken({ ...t, name: 'a'.repeat(63), tokenHash: hashToken('v63') });
        await rejectsInvalid(s.createAdminToken({ ...t, name: '-lead' }), 'name');
        await rejectsInvalid(s.createAdminToken({ ...t, scope: 'root' as 'read' }), 'scope');
        await rejectsInvalid(s.createAdminToken({ ...t, tokenHash: 'plain' }), 'tokenHash');
        await rejectsInvalid(s.createAdminToken(t, { audit: [{ actor: '', action: 'x' }] }), 'actor');
        await rejectsInvalid(s.findAdminToken('plain'), 'tokenHash');
        expect((await s.listAdminTokens()).map((x) => x.name)).toEqual(['a'.repeat(63)]);
      });
    });

    // ------------------------------------------------------------ PN inventory

    describe('PN inventory', () => {
      it('register, attach, move, online, list', async () => {
        const g1 = gwId();
        const g2 = gwId();
        const p1 = pneId();
        const p2 = pneId();
        expect(await s.registerGateway(g1, 10)).toEqual({
          gwId: g1,
          registeredAt: 10,
          lastSeen: 10,
          online: false,
        });
        expect((await s.registerGateway(g1, 20)).registeredAt).toBe(10); // idempotent
        await s.registerGateway(g2, 10);
        await s.setOnline(g1, true, 30);
        expect(await s.attachPne(p1, g1, ['wifi', 'ble', 'wifi'], 40)).toEqual({ previousGwId: null });
        await s.attachPne(p2, g1, ['ble']);
        expect(await s.getPne(p1)).toEqual({
          pneId: p1,
          gwId: g1,
          media: ['wifi', 'ble'],
          online: true,
          lastSeen: 40,
        });
        expect(await s.attachPne(p2, g2, ['wifi'])).toEqual({ previousGwId: g1 });
        await s.setOnline(p1, false, 50);
        const pns = await s.listPns();
        const byGw = new Map(pns.map((pn) => [pn.gwId, pn]));
        expect(byGw.get(g1)?.online).toBe(true);
        expect(byGw.get(g1)?.lastSeen).toBe(30);
        expect(byGw.get(g1)?.pnes.map((p) => [p.pneId, p.online])).toEqual([[p1, false]]);
        expect(byGw.get(g2)?.pnes.map((p) => p.pneId)).toEqual([p2]);
        expect(await s.detachPne(p2)).toBe(true);
        expect(await s.detachPne(p2)).toBe(false);
        expect((await s.listDetachedPnes()).map((p) => p.pneId)).toEqual([p2]);
      });

      it('deregistering a gateway detaches its PNEs and returns them', async () => {
        const g = gwId();
        const other = gwId();
        const ps = [pneId(), pneId(), pneId()].sort();
        await s.registerGateway(g);
        await s.registerGateway(other);
        for (const p of ps) await s.attachPne(p, g, ['wifi']);
        const q = pneId();
        await s.attachPne(q, other, ['wifi']);
        expect(await s.deregisterGateway(g)).toEqual(ps);
        expect(await s.getGateway(g)).toBeUndefined();
        for (const p of ps) expect(await s.getPne(p)).toMatchObject({ gwId: null, online: false });
        expect((await s.getPne(q))?.gwId).toBe(other);
        expect((await s.listPns()).map((pn) => pn.gwId)).toEqual([other]);
        await rejectsStore(s.deregisterGateway(g), 'NOT_FOUND');
      });

      it('unknown ids and bad media are typed errors', async () => {
        await rejectsStore(s.attachPne(pneId(), gwId(), []), 'NOT_FOUND');
        await rejectsStore(s.setOnline(gwId(), true), 'NOT_FOUND');
        await rejectsStore(s.setOnline(pneId(), true), 'NOT_FOUND');
        const g = gwId();
        await s.registerGateway(g);
        await rejectsInvalid(s.attachPne(pneId(), g, ['Wi Fi']), 'media');
        await rejectsInvalid(
          s.attachPne(
            pneId(),
            g,
            Array.from({ length: 17 }, (_, i) => `m${i}`),
          ),
          'media',
        );
        await rejectsInvalid(s.attachPne(g, g, []), 'pneId');
        await rejectsInvalid(s.registerGateway(pneId()), 'gwId');
        await rejectsInvalid(s.setOnline('urn:cpns:server:x', true), 'id');
      });
    });

    // ------------------------------------------------------------ Service Groups

    describe('service groups', () => {
      it('create, get, list, update', async () => {
        const owner = pneId();
        const g = await s.createGroup(
          group({
            ownerId: owner,
            sourceAuth: true,
            rekeyIntervalSec: 3600,
            suite: Suite.CHACHA20_POLY1305,
            createdAt: 7,
          }),
        );
        expect(g).toMatchObject({
          name: 'family sensors',
          ownerId: owner,
          joinPolicy: 'open',
          suite: Suite.CHACHA20_POLY1305,
          sourceAuth: true,
          rekeyIntervalSec: 3600,
          deliveryPolicy: null,
          createdAt: 7,
          epochHighWater: 0,
          // Backward secrecy on join is the default (docs/protocol.md).
          updateOnJoin: true,
        });
        expect(g.sgId).toMatch(/^[0-9a-f-]{36}$/);
        const other = await s.createGroup(group({ sgId: randomUUID() }));
        expect((await s.listGroups()).map((x) => x.sgId)).toEqual([g.sgId, other.sgId]);
        expect((await s.listGroups({ ownerId: owner })).map((x) => x.sgId)).toEqual([g.sgId]);
        const u = await s.updateGroup(g.sgId, {
          name: 'renamed',
          joinPolicy: 'invite',
          rekeyIntervalSec: null,
          deliveryPolicy: { mode: 'broadcast', min: 4 },
        });
        expect(u).toMatchObject({ name: 'renamed', joinPolicy: 'invite', rekeyIntervalSec: null });
        const off = await s.updateGroup(g.sgId, { updateOnJoin: false });
        expect(off.updateOnJoin).toBe(false);
        expect((await s.createGroup(group({ updateOnJoin: false }))).updateOnJoin).toBe(false);
        await rejectsInvalid(
          s.updateGroup(g.sgId, { updateOnJoin: 'yes' as unknown as boolean }),
          'updateOnJoin',
        );
        const u2 = await s.updateGroup(g.sgId, { updateOnJoin: true });
        expect(u2).toEqual({ ...u, updateOnJoin: true });
        expect(u.deliveryPolicy).toEqual({ mode: 'broadcast', min: 4 });
        expect(await s.getGroup(g.sgId)).toEqual(u2);
        expect(await s.getGroup(randomUUID())).toBeUndefined();
        await rejectsStore(s.createGroup(group({ sgId: g.sgId })), 'CONFLICT');
        await rejectsStore(s.updateGroup(randomUUID(), { name: 'x' }), 'NOT_FOUND');
      });

      it('members, invitations, groups of a PNE', async () => {
        const g = await s.createGroup(group({ joinPolicy: 'invite' }));
        const h2 = await s.createGroup(group());
        const [a, b, c] = [pneId(), pneId(), pneId()];
        await s.invite(g.sgId, a);
        await s.invite(g.sgId, b);
        expect(await s.hasInvite(g.sgId, a)).toBe(true);
        expect((await s.listInvites(g.sgId)).sort()).toEqual([a, b].sort());
        expect(await s.addMember(g.sgId, a, 100)).toBe(true);
        expect(await s.addMember(g.sgId, a)).toBe(false);
        expect(await s.hasInvite(g.sgId, a)).toBe(false); // consumed by the join
        expect(await s.uninvite(g.sgId, b)).toBe(true);
        expect(await s.uninvite(g.sgId, b)).toBe(false);
        await s.addMember(g.sgId, c);
        await s.addMember(h2.sgId, a);
        expect(await s.listMembers(g.sgId)).toContainEqual({ sgId: g.sgId, pneId: a, joinedAt: 100 });
        expect(await s.countMembers(g.sgId)).toBe(2);
        expect(await s.isMember(g.sgId, b)).toBe(false);
        expect((await s.groupsOfPne(a)).sort()).toEqual([g.sgId, h2.sgId].sort());
        expect(await s.removeMember(g.sgId, a)).toBe(true);
        expect(await s.removeMember(g.sgId, a)).toBe(false);
        expect(await s.groupsOfPne(a)).toEqual([h2.sgId]);
        await rejectsStore(s.addMember(randomUUID(), a), 'NOT_FOUND');
        await rejectsStore(s.invite(randomUUID(), a), 'NOT_FOUND');
      });

      it('delete cascades keys, members, invitations, deliveries and relay marks, and returns the members', async () => {
        const g = await s.createGroup(group());
        const gw = gwId();
        const [a, b] = [pneId(), pneId()].sort();
        await s.addMember(g.sgId, a!);
        await s.addMember(g.sgId, b!);
        await s.invite(g.sgId, pneId());
        await s.rotateGroupKey(g.sgId, randomBytes(32), 'create', KC);
        await s.recordDelivery({ sgId: g.sgId, epoch: 1, pneId: a!, gwId: gw, method: 'unicast' });
        await s.recordGatewayAck({ sgId: g.sgId, epoch: 1, gwId: gw });
        await s.upsertRelayMark({
          sgId: g.sgId,
          epoch: 1,
          sender: '0'.repeat(32),
          instance: '1'.repeat(16),
          counter: 5,
        });
        expect(
          await s.deleteGroup(g.sgId, { audit: [{ actor: 'operator', action: 'group.delete' }] }),
        ).toEqual({ sgId: g.sgId, members: [a, b], epochHighWater: 1 });
        for (const t of [
          'group_keys',
          'members',
          'invitations',
          'deliveries',
          'gw_deliveries',
          'relay_marks',
        ]) {
          const rows = await h.raw(s, `SELECT COUNT(*) AS n FROM ${t} WHERE sg_id = ?`, [g.sgId]);
          expect(Number(rows[0]?.n), t).toBe(0);
        }
        // audit outlives the group: key.create and group.delete
        expect((await s.listAudit({ sgId: g.sgId })).entries.map((e) => e.action)).toEqual([
          'key.create',
          'group.delete',
        ]);
        expect(await s.getGroup(g.sgId)).toBeUndefined();
        await rejectsStore(s.deleteGroup(g.sgId), 'NOT_FOUND');
      });

      it('validates groups', async () => {
        await rejectsInvalid(s.createGroup(group({ sgId: 'ABCDEF00-0000-0000-0000-000000000000' })), 'sgId');
        await rejectsInvalid(s.createGroup(group({ name: '' })), 'name');
        await rejectsInvalid(s.createGroup(group({ name: 'x'.repeat(129) })), 'name');
        await rejectsInvalid(s.createGroup(group({ name: 'a\nb' })), 'name');
        await rejectsInvalid(s.createGroup(group({ ownerId: gwId() })), 'ownerId');
        await rejectsInvalid(s.createGroup(group({ joinPolicy: 'closed' as 'open' })), 'joinPolicy');
        await rejectsInvalid(s.createGroup(group({ suite: 9 as Suite })), 'suite');
        await rejectsInvalid(s.createGroup(group({ rekeyIntervalSec: 0 })), 'rekeyIntervalSec');
        await rejectsInvalid(
          s.createGroup(group({ deliveryPolicy: { big: 'x'.repeat(5000) } })),
          'deliveryPolicy',
        );
        await rejectsInvalid(s.getGroup("x' OR 1=1 --"), 'sgId');
        await rejectsInvalid(s.addMember(randomUUID(), 'urn:cpns:pne:1234'), 'pneId');
      });
    });

    // ------------------------------------------------------------ delivery tracking

    describe('delivery tracking', () => {
      it('per-member acked epoch, method, online and lag; per-GW status', async () => {
        const g = await s.createGroup(group());
        const [g1, g2] = [gwId(), gwId()];
        await s.registerGateway(g1);
        await s.registerGateway(g2);
        await s.setOnline(g1, true);
        const [a, b, c, d] = [pneId(), pneId(), pneId(), pneId()];
        await s.attachPne(a, g1, ['wifi']);
        await s.attachPne(b, g1, ['wifi']);
        await s.attachPne(c, g2, ['ble']);
        for (const p of [a, b, c, d]) await s.addMember(g.sgId, p);
        await s.setOnline(c, false);
        for (let i = 0; i < 4; i++) await s.rotateGroupKey(g.sgId, randomBytes(32), 'manual', KU);
        await s.recordDeliveries([
          { sgId: g.sgId, epoch: 3, pneId: a, gwId: g1, method: 'unicast', ackedAt: 1 },
          { sgId: g.sgId, epoch: 4, pneId: a, gwId: g1, method: 'broadcast', ackedAt: 2 },
          { sgId: g.sgId, epoch: 4, pneId: a, gwId: g1, method: 'fallback', ackedAt: 9 }, // duplicate: first wins
          { sgId: g.sgId, epoch: 2, pneId: b, gwId: g1, method: 'fallback', ackedAt: 3 },
        ]);
        await s.recordGatewayAck({ sgId: g.sgId, epoch: 4, gwId: g1, ackedAt: 5 });
        await s.recordGatewayAck({ sgId: g.sgId, epoch: 3, gwId: g1, ackedAt: 4 });
        const st = await s.deliveryStatus(g.sgId);
        expect(st.currentEpoch).toBe(4);
        const m = new Map(st.members.map((x) => [x.pneId, x]));
        expect(m.get(a)).toEqual({
          pneId: a,
          gwId: g1,
          online: true,
          ackedEpoch: 4,
          ackedAt: 2,
          method: 'broadcast',
          lag: 0,
        });
        expect(m.get(b)).toMatchObject({ ackedEpoch: 2, method: 'fallback', lag: 2 });
        expect(m.get(c)).toEqual({
          pneId: c,
          gwId: g2,
          online: false,
          ackedEpoch: null,
          ackedAt: null,
          method: null,
          lag: 4,
        });
        expect(m.get(d)).toMatchObject({ gwId: null, online: false, lag: 4 }); // unknown to the inventory
        const gws = new Map(st.gateways.map((x) => [x.gwId, x]));
        expect(gws.get(g1)).toEqual({ gwId: g1, online: true, ackedEpoch: 4, ackedAt: 5, lag: 0 });
        expect(gws.get(g2)).toEqual({ gwId: g2, online: false, ackedEpoch: null, ackedAt: null, lag: 4 });

        // a removed member disappears from the status with its records
        await s.removeMember(g.sgId, b);
        expect((await s.deliveryStatus(g.sgId)).members.map((x) => x.pneId)).not.toContain(b);
        // pruning keeps each member's latest ack
        await s.pruneKeys(g.sgId, 4);
        expect((await s.deliveryStatus(g.sgId)).members.find((x) => x.pneId === a)?.ackedEpoch).toBe(4);
        const rows = await h.raw(s, 'SELECT epoch FROM deliveries WHERE sg_id = ? AND pne_id = ?', [
          g.sgId,
          a,
        ]);
        expect(rows.map((r) => Number(r.epoch))).toEqual([4]);
      });

      it('lag counts only active epochs', async () => {
        const g = await s.createGroup(group());
        const p = pneId();
        await s.addMember(g.sgId, p);
        await s.rotateGroupKey(g.sgId, randomBytes(32), 'create', { ...KC, at: 0 });
        await s.rotateGroupKey(g.sgId, randomBytes(32), 'periodic', { ...KU, at: 0, activateAt: 10_000 });
        await s.recordDelivery({ sgId: g.sgId, epoch: 2, pneId: p, gwId: gwId(), method: 'unicast' });
        const before = await s.deliveryStatus(g.sgId, 5000);
        expect(before.currentEpoch).toBe(1);
        expect(before.members[0]?.lag).toBe(0);
        expect((await s.deliveryStatus(g.sgId, 10_000)).currentEpoch).toBe(2);
      });

      it('rejects acks for unknown groups or never-allocated epochs', async () => {
        const g = await s.createGroup(group());
        await s.rotateGroupKey(g.sgId, randomBytes(32), 'create', KC);
        const ack = { sgId: g.sgId, epoch: 2, pneId: pneId(), gwId: gwId(), method: 'unicast' as const };
        await rejectsInvalid(s.recordDelivery(ack), 'epoch');
        await rejectsStore(s.recordDelivery({ ...ack, sgId: randomUUID(), epoch: 1 }), 'NOT_FOUND');
        await rejectsInvalid(
          s.recordDelivery({ ...ack, epoch: 1, method: 'carrier-pigeon' as 'unicast' }),
          'method',
        );
        await rejectsStore(s.deliveryStatus(randomUUID()), 'NOT_FOUND');
        // a batch is all-or-nothing
        await rejectsInvalid(s.recordDeliveries([{ ...ack, epoch: 1 }, ack]), 'epoch');
        // each row is checked against its own group's epochs (a batch names several groups)
        const other = await s.createGroup(group());
        await s.rotateGroupKey(other.sgId, randomBytes(32), 'create', KC);
        await s.rotateGroupKey(other.sgId, randomBytes(32), 'manual', KU);
        await rejectsInvalid(s.recordDeliveries([{ ...ack, sgId: other.sgId }, ack]), 'epoch');
        await rejectsInvalid(
          s.recordGatewayAcks([
            { sgId: other.sgId, epoch: 2, gwId: ack.gwId },
            { sgId: g.sgId, epoch: 2, gwId: ack.gwId },
          ]),
          'epoch',
        );
        expect(await h.raw(s, 'SELECT * FROM gw_deliveries')).toEqual([]);
        expect((await s.deliveryStatus(g.sgId)).members).toEqual([]);
        expect(await h.raw(s, 'SELECT * FROM deliveries')).toEqual([]);
      });

      it('GW acks in one batch: first ack wins, all or nothing', async () => {
        const g = await s.createGroup(group());
        const [g1, g2] = [gwId(), gwId()].sort();
        await s.rotateGroupKey(g.sgId, randomBytes(32), 'create', KC);
        await s.rotateGroupKey(g.sgId, randomBytes(32), 'manual', KU);
        await s.recordGatewayAcks([
          { sgId: g.sgId, epoch: 2, gwId: g1!, ackedAt: 3 },
          { sgId: g.sgId, epoch: 2, gwId: g1!, ackedAt: 9 }, // duplicate: first wins
          { sgId: g.sgId, epoch: 1, gwId: g2!, ackedAt: 4 },
        ]);
        const gws = (await s.deliveryStatus(g.sgId)).gateways.map((x) => [
          x.gwId,
          x.ackedEpoch,
          x.ackedAt,
          x.lag,
        ]);
        expect(gws).toEqual([
          [g1, 2, 3, 0],
          [g2, 1, 4, 1],
        ]);
        // one never-allocated epoch, or one unknown group, refuses the whole batch
        const g3 = gwId();
        await rejectsInvalid(
          s.recordGatewayAcks([
            { sgId: g.sgId, epoch: 1, gwId: g3 },
            { sgId: g.sgId, epoch: 3, gwId: g3 },
          ]),
          'epoch',
        );
        await rejectsStore(
          s.recordGatewayAcks([
            { sgId: g.sgId, epoch: 1, gwId: g3 },
            { sgId: randomUUID(), epoch: 1, gwId: g3 },
          ]),
          'NOT_FOUND',
        );
        await rejectsInvalid(
          s.recordGatewayAcks([{ sgId: g.sgId, epoch: 1, gwId: 'urn:cpns:gw:1' }]),
          'gwId',
        );
        expect(await h.raw(s, 'SELECT * FROM gw_deliveries WHERE gw_id = ?', [g3])).toEqual([]);
        await s.recordGatewayAcks([]); // nothing to write
      });
    });

    // ------------------------------------------------------------ relay marks

    describe('relay high-water marks', () => {
      it('keeps the maximum counter per sender instance and epoch', async () => {
        const g = await s.createGroup(group());
        await s.rotateGroupKey(g.sgId, randomBytes(32), 'create', KC);
        const base = { sgId: g.sgId, epoch: 1, sender: 'ab'.repeat(16), instance: '01'.repeat(8) };
        await s.upsertRelayMark({ ...base, counter: 10 });
        await s.upsertRelayMark({ ...base, counter: 7 });
        await s.upsertRelayMark({ ...base, instance: '02'.repeat(8), counter: 3 });
        await s.upsertRelayMark({ ...base, epoch: 2, counter: 99 });
        expect(await s.listRelayMarks(g.sgId, 1)).toEqual([
          { ...base, counter: 10 },
          { ...base, instance: '02'.repeat(8), counter: 3 },
        ]);
        await s.upsertRelayMark({ ...base, counter: 2 ** 48 - 1 });
        expect((await s.listRelayMarks(g.sgId, 1))[0]?.counter).toBe(2 ** 48 - 1);
        expect(await s.listRelayMarks(g.sgId, 2)).toHaveLength(1);
        await s.pruneKeys(g.sgId, 2);
        expect(await s.listRelayMarks(g.sgId, 1)).toEqual([]);
        await rejectsInvalid(s.upsertRelayMark({ ...base, counter: 2 ** 48 }), 'counter');
        await rejectsInvalid(s.upsertRelayMark({ ...base, sender: 'AB'.repeat(16), counter: 1 }), 'sender');
        await rejectsInvalid(s.upsertRelayMark({ ...base, instance: '01', counter: 1 }), 'instance');
        await rejectsStore(s.upsertRelayMark({ ...base, sgId: randomUUID(), counter: 1 }), 'NOT_FOUND');
      });
    });

    // ------------------------------------------------------------ audit

    describe('audit row in the same transaction as its change', () => {
      const KEY_ROWS = `SELECT epoch, COUNT(*) AS n FROM audit_log
        WHERE sg_id = ? AND action IN ('key.create', 'key.update') GROUP BY epoch ORDER BY epoch`;

      /** What a rotation may change: key rows, the high-water mark, audit rows. */
      async function snapshot(sgId: string) {
        return {
          keys: (await s.listKeyEpochs(sgId)).map((k) => k.epoch),
          hwm: (await s.getGroup(sgId))?.epochHighWater,
          audit: (await h.raw(s, 'SELECT COUNT(*) AS n FROM audit_log')).map((r) => Number(r.n))[0],
        };
      }

      it('a rotation writes exactly one audit row with its epoch, actor, action, reason and time', async () => {
        const g = await s.createGroup(group());
        const p = pneId();
        const m1 = await s.rotateGroupKey(g.sgId, randomBytes(32), 'create', {
          audit: { actor: 'operator:alice', action: 'key.create', detail: { members: 0 } },
          at: 5000,
        });
        const m2 = await s.rotateGroupKey(g.sgId, randomBytes(32), 'member_left', {
          // the epoch is the store's: whatever a caller slips in is ignored
          audit: { actor: p, action: 'key.update', reason: 'leave', subject: p, epoch: 99 } as KeyAudit,
          at: 6000,
          activateAt: 7000,
        });
        expect([m1.epoch, m2.epoch]).toEqual([1, 2]);
        expect((await s.listAudit({ sgId: g.sgId })).entries).toEqual([
          {
            seq: expect.any(Number),
            at: 5000,
            actor: 'operator:alice',
            action: 'key.create',
            sgId: g.sgId,
            subject: null,
            epoch: 1,
            reason: null,
            detail: { members: 0 },
          },
          {
            seq: expect.any(Number),
            at: 6000,
            actor: p,
            action: 'key.update',
            sgId: g.sgId,
            subject: p,
            epoch: 2,
            reason: 'leave',
            detail: null,
          },
        ]);
      });

      it('concurrent rotations: one key audit row per committed epoch, no gap, no duplicate', async () => {
        const g = await s.createGroup(group());
        await Promise.all(
          Array.from({ length: 40 }, () => s.rotateGroupKey(g.sgId, randomBytes(32), 'manual', KU)),
        );
        const rows = await h.raw(s, KEY_ROWS, [g.sgId]);
        expect(rows.map((r) => [Number(r.epoch), Number(r.n)])).toEqual(
          Array.from({ length: 40 }, (_, i) => [i + 1, 1]),
        );
        expect((await s.getGroup(g.sgId))?.epochHighWater).toBe(40);
        // pruning keys never touches the audit: every epoch ever committed stays accounted for
        await s.pruneKeys(g.sgId, 40);
        expect(await h.raw(s, KEY_ROWS, [g.sgId])).toHaveLength(40);
      });

      it('a failing rotation writes neither key, nor epoch, nor audit row', async () => {
        const g = await s.createGroup(group());
        await s.rotateGroupKey(g.sgId, randomBytes(32), 'create', KC);
        const before = await snapshot(g.sgId);
        const k = randomBytes(32);
        const rot = (audit: unknown, reason = 'manual', key: Uint8Array = k) =>
          s.rotateGroupKey(g.sgId, key, reason, { audit } as RotateOptions);
        const ok = { actor: 'server', action: 'key.update' };
        // invalid audit fields, validated as appendAudit validates them
        await rejectsInvalid(
          s.rotateGroupKey(g.sgId, k, 'manual', undefined as unknown as RotateOptions),
          'audit',
        );
        await rejectsInvalid(rot(undefined), 'audit');
        await rejectsInvalid(rot(null), 'audit');
        await rejectsInvalid(rot({ ...ok, action: 'key.delete' }), 'action');
        await rejectsInvalid(rot({ ...ok, action: 'group.create' }), 'action');
        await rejectsInvalid(rot({ ...ok, actor: '' }), 'actor');
        await rejectsInvalid(rot({ ...ok, actor: 'x'.repeat(257) }), 'actor');
        await rejectsInvalid(rot({ ...ok, actor: 'a\nb' }), 'actor');
        await rejectsInvalid(rot({ ...ok, reason: 'r\u0000' }), 'reason');
        await rejectsInvalid(rot({ ...ok, subject: 's'.repeat(257) }), 'subject');
        await rejectsInvalid(rot({ ...ok, detail: { key: 'aa' } }), 'detail');
        await rejectsInvalid(rot({ ...ok, detail: { nested: { secret: 1 } } }), 'detail');
        await rejectsInvalid(rot({ ...ok, detail: { blob: randomBytes(8) } }), 'detail');
        await rejectsInvalid(rot({ ...ok, detail: { big: 'x'.repeat(9000) } }), 'detail');
        // other invalid input, with a valid audit
        await rejectsInvalid(rot(ok, 'manual', randomBytes(31)), 'key');
        await rejectsInvalid(rot(ok, 'Bad Reason'), 'reason');
        // unknown and retired groups
        await rejectsStore(s.rotateGroupKey(randomUUID(), k, 'manual', KU), 'NOT_FOUND');
        expect(await snapshot(g.sgId)).toEqual(before);
        expect((await s.listAudit({ action: 'key.update' })).entries).toHaveLength(0);
        // exhausted epoch space
        await h.raw(s, 'UPDATE service_groups SET epoch_hwm = ? WHERE sg_id = ?', [0xffff_ffff, g.sgId]);
        await rejectsStore(rot(ok), 'EPOCH_EXHAUSTED');
        expect(await snapshot(g.sgId)).toEqual({ ...before, hwm: 0xffff_ffff });
        await h.raw(s, 'UPDATE service_groups SET epoch_hwm = ? WHERE sg_id = ?', [1, g.sgId]);
        // and the next good rotation continues without a gap
        expect((await rot(ok)).epoch).toBe(2);
        expect((await h.raw(s, KEY_ROWS, [g.sgId])).map((r) => Number(r.epoch))).toEqual([1, 2]);
      });

      it('a rotation whose audit row cannot be written leaves no key and no epoch (one transaction)', async () => {
        const g = await s.createGroup(group());
        await s.rotateGroupKey(g.sgId, randomBytes(32), 'create', KC);
        const before = await snapshot(g.sgId);
        const undo = await h.failAuditInserts(s);
        try {
          await expect(s.rotateGroupKey(g.sgId, randomBytes(32), 'manual', KU)).rejects.toThrow();
          expect(await snapshot(g.sgId)).toEqual(before);
          expect((await s.getCurrentKey(g.sgId))?.epoch).toBe(1);
        } finally {
          await undo();
        }
        expect((await s.rotateGroupKey(g.sgId, randomBytes(32), 'manual', KU)).epoch).toBe(2);
        expect((await h.raw(s, KEY_ROWS, [g.sgId])).map((r) => Number(r.epoch))).toEqual([1, 2]);
      });

      it('createGroup writes the group, its initial members and its audit rows together', async () => {
        const [a, b] = [pneId(), pneId()].sort() as [string, string];
        const audit = [
          { actor: 'operator', action: 'group.create', detail: { name: 'family sensors' } },
          { actor: 'operator', action: 'member.add', subject: a },
          { actor: 'operator', action: 'member.add', subject: b },
        ];
        const g = await s.createGroup(group({ members: [a, b, a], createdAt: 42 }), { audit });
        expect((await s.listMembers(g.sgId)).map((m) => [m.pneId, m.joinedAt])).toEqual([
          [a, 42],
          [b, 42],
        ]);
        const rows = (await s.listAudit({ sgId: g.sgId })).entries;
        expect(rows.map((e) => [e.action, e.subject, e.sgId, e.at])).toEqual([
          ['group.create', null, g.sgId, 42],
          ['member.add', a, g.sgId, 42],
          ['member.add', b, g.sgId, 42],
        ]);
        // nothing at all when the audit cannot be written, or is invalid, or names another group
        const count = async () => (await s.listGroups()).length;
        const undo = await h.failAuditInserts(s);
        try {
          await expect(s.createGroup(group({ members: [a] }), { audit })).rejects.toThrow();
        } finally {
          await undo();
        }
        await rejectsInvalid(
          s.createGroup(group(), {
            audit: [{ actor: 'operator', action: 'group.create', detail: { token: 'x' } }],
          }),
          'detail',
        );
        await rejectsInvalid(
          s.createGroup(group(), {
            audit: [{ actor: 'operator', action: 'group.create', sgId: randomUUID() } as GroupAudit],
          }),
          'sgId',
        );
        await rejectsInvalid(s.createGroup(group({ members: ['urn:cpns:gw:x'] })), 'members');
        expect(await count()).toBe(1);
        expect(await s.groupsOfPne(a)).toEqual([g.sgId]);
      });

      it('deleteGroup writes its audit rows in the delete transaction', async () => {
        const g = await s.createGroup(group({ members: [pneId()] }));
        await s.rotateGroupKey(g.sgId, randomBytes(32), 'create', KC);
        const audit = [
          { actor: 'operator', action: 'key.delete', epoch: 1 },
          { actor: 'operator', action: 'group.delete' },
        ];
        const undo = await h.failAuditInserts(s);
        try {
          await expect(s.deleteGroup(g.sgId, { audit })).rejects.toThrow();
        } finally {
          await undo();
        }
        // still there, not retired, keys and members intact
        expect((await s.getGroup(g.sgId))?.epochHighWater).toBe(1);
        expect(await s.countMembers(g.sgId)).toBe(1);
        expect((await s.getCurrentKey(g.sgId))?.epoch).toBe(1);
        await rejectsInvalid(
          s.deleteGroup(g.sgId, { audit: [{ actor: '', action: 'group.delete' }] }),
          'actor',
        );
        expect(await s.getGroup(g.sgId)).toBeDefined();
        await s.deleteGroup(g.sgId, { audit });
        expect((await s.listAudit({ sgId: g.sgId })).entries.map((e) => [e.action, e.epoch])).toEqual([
          ['key.create', 1],
          ['key.delete', 1],
          ['group.delete', null],
        ]);
        await rejectsStore(s.deleteGroup(g.sgId, { audit }), 'NOT_FOUND');
        expect((await s.listAudit({ sgId: g.sgId })).entries).toHaveLength(3);
      });

      it('removeMember writes its audit row only when it removes, in the same transaction', async () => {
        const p = pneId();
        const g = await s.createGroup(group({ members: [p] }));
        const audit = [{ actor: 'operator', action: 'member.remove', subject: p, reason: 'remove' }];
        const undo = await h.failAuditInserts(s);
        try {
          await expect(s.removeMember(g.sgId, p, { audit })).rejects.toThrow();
        } finally {
          await undo();
        }
        expect(await s.isMember(g.sgId, p)).toBe(true);
        expect(await s.removeMember(g.sgId, p, { audit })).toBe(true);
        expect(await s.removeMember(g.sgId, p, { audit })).toBe(false); // no-op: no audit row
        const rows = (await s.listAudit({ sgId: g.sgId })).entries;
        expect(rows.map((e) => [e.action, e.subject, e.reason])).toEqual([['member.remove', p, 'remove']]);
      });
    });

    describe('outbox (docs/cluster.md)', () => {
      it("a rotation with outbox: true writes one key.epoch row per epoch, in the key's transaction", async () => {
        const g = await s.createGroup(group());
        await s.rotateGroupKey(g.sgId, randomBytes(32), 'create', KC); // outbox off: nothing
        expect(await s.listOutbox()).toEqual([]);
        await s.rotateGroupKey(g.sgId, randomBytes(32), 'member_left', { ...KU, outbox: true, at: 7000 });
        await s.rotateGroupKey(g.sgId, randomBytes(32), 'periodic', { ...KU, outbox: true, at: 8000 });
        const rows = await s.listOutbox();
        expect(rows.map(({ at, kind, body }) => ({ at, kind, body }))).toEqual([
          { at: 7000, kind: 'key.epoch', body: { sgId: g.sgId, epoch: 2, reason: 'member_left' } },
          { at: 8000, kind: 'key.epoch', body: { sgId: g.sgId, epoch: 3, reason: 'periodic' } },
        ]);
        expect(rows[0]!.seq).toBeLessThan(rows[1]!.seq);
        // never key material: the body is exactly ids, epoch and reason
        for (const r of rows) expect(Object.keys(r.body).sort()).toEqual(['epoch', 'reason', 'sgId']);
        // `node`: the committing cluster node, recorded in the row (checked like any node id)
        await s.rotateGroupKey(g.sgId, randomBytes(32), 'manual', { ...KU, outbox: true, node: 'n-1' });
        expect((await s.listOutbox()).at(-1)!.body).toEqual({
          sgId: g.sgId,
          epoch: 4,
          reason: 'manual',
          node: 'n-1',
        });
        await rejectsInvalid(
          s.rotateGroupKey(g.sgId, randomBytes(32), 'manual', { ...KU, outbox: true, node: 'a b' }),
          'node',
        );
        await s.deleteOutbox([(await s.listOutbox()).at(-1)!.seq]);
        expect(await s.listOutbox(1)).toEqual([rows[0]]);
        await s.deleteOutbox([rows[0]!.seq, 999_999]); // unknown seqs are ignored
        expect(await s.listOutbox()).toEqual([rows[1]]);
        await s.deleteOutbox([]);
        expect(await s.listOutbox()).toHaveLength(1);
      });

      it('a rotation that fails writes no outbox row', async () => {
        const g = await s.createGroup(group());
        await s.rotateGroupKey(g.sgId, randomBytes(32), 'create', KC);
        const undo = await h.failAuditInserts(s);
        try {
          await expect(
            s.rotateGroupKey(g.sgId, randomBytes(32), 'manual', { ...KU, outbox: true }),
          ).rejects.toThrow();
        } finally {
          await undo();
        }
        expect(await s.listOutbox()).toEqual([]);
      });

      it("every change that takes `outbox` writes its rows in the change's transaction, and none for a no-op", async () => {
        const p = pneId();
        const q = pneId();
        const row = (kind: string, extra: Record<string, unknown> = {}) => [
          { kind, body: { n: 1, ...extra } },
        ];
        const g = await s.createGroup(group({ members: [p] }), { outbox: row('sg.created') });
        expect(await s.addMember(g.sgId, q, undefined, { outbox: row('membership.changed') })).toBe(true);
        expect(await s.addMember(g.sgId, q, undefined, { outbox: row('membership.changed') })).toBe(false);
        await s.updateGroup(g.sgId, { joinPolicy: 'open' }, { outbox: row('policy.changed') });
        expect(await s.removeMember(g.sgId, q, { outbox: row('membership.changed', { r: 1 }) })).toBe(true);
        expect(await s.removeMember(g.sgId, q, { outbox: row('membership.changed', { r: 2 }) })).toBe(false);
        await s.putIdentity({ id: p, role: 'pne', certSerial: '0A', certPem: PEM });
        await s.revokeIdentity(p, undefined, { outbox: row('identity.revoked') });
        await s.deleteGroup(g.sgId, { outbox: row('sg.deleted') });
        const rows = await s.listOutbox();
        expect(rows.map((r) => [r.kind, r.body])).toEqual([
          ['sg.created', { n: 1 }],
          ['membership.changed', { n: 1 }],
          ['policy.changed', { n: 1 }],
          ['membership.changed', { n: 1, r: 1 }],
          ['identity.revoked', { n: 1 }],
          ['sg.deleted', { n: 1 }],
        ]);
        // A change that fails (its audit insert refused) takes its outbox row back with it.
        const g2 = await s.createGroup(group());
        const undo = await h.failAuditInserts(s);
        try {
          await expect(
            s.updateGroup(
              g2.sgId,
              { joinPolicy: 'open' },
              {
                audit: [{ actor: 'operator', action: 'sg.policy' }],
                outbox: row('policy.changed'),
              },
            ),
          ).rejects.toThrow();
        } finally {
          await undo();
        }
        expect((await s.getGroup(g2.sgId))!.joinPolicy).toBe('open');
        expect(await s.listOutbox()).toHaveLength(rows.length);
      });

      it('attachPne writes its outbox row only when the PNE changes place; appendOutbox writes rows on their own', async () => {
        const g1 = gwId();
        const g2 = gwId();
        await s.registerGateway(g1);
        await s.registerGateway(g2);
        const p = pneId();
        const row = (gw: string) => ({ outbox: [{ kind: 'pne.attached', body: { pneId: p, gwId: gw } }] });
        await s.attachPne(p, g1, ['wifi'], undefined, row(g1));
        await s.attachPne(p, g1, ['wifi', 'bt'], undefined, row(g1)); // same place: no row
        await s.attachPne(p, g2, ['wifi'], undefined, row(g2));
        await s.appendOutbox([{ kind: 'signer.key', body: { pneId: p } }], 5000);
        await rejectsInvalid(s.appendOutbox([{ kind: 'BAD', body: {} }]), 'kind');
        const rows = await s.listOutbox();
        expect(rows.map((r) => [r.kind, r.body])).toEqual([
          ['pne.attached', { pneId: p, gwId: g1 }],
          ['pne.attached', { pneId: p, gwId: g2 }],
          ['signer.key', { pneId: p }],
        ]);
        expect(rows[2]!.at).toBe(5000);
      });

      it('outbox rows are bounded and checked before any write (kind, body, count: at the limit and one past)', async () => {
        const g = await s.createGroup(group());
        const w = (kind: string, body: unknown = {}) => ({ kind, body }) as { kind: string; body: never };
        await rejectsInvalid(s.updateGroup(g.sgId, {}, { outbox: [w('Bad Kind')] }), 'kind');
        await rejectsInvalid(s.updateGroup(g.sgId, {}, { outbox: [w(`a${'b'.repeat(64)}`)] }), 'kind');
        await rejectsInvalid(s.updateGroup(g.sgId, {}, { outbox: [w('x', [1])] }), 'body');
        await rejectsInvalid(
          s.updateGroup(g.sgId, {}, { outbox: [w('x', { s: 'y'.repeat(16 * 1024) })] }),
          'body',
        );
        await rejectsInvalid(
          s.updateGroup(g.sgId, {}, { outbox: Array.from({ length: 9 }, () => w('x')) }),
          'outbox',
        );
        expect(await s.listOutbox()).toEqual([]);
        await s.updateGroup(g.sgId, {}, { outbox: Array.from({ length: 8 }, () => w(`a${'b'.repeat(63)}`)) });
        expect(await s.listOutbox()).toHaveLength(8);
      });

      it('limits: listOutbox 1..1000, deleteOutbox at most 1000 seqs (exactly the limit and one past it)', async () => {
        await rejectsInvalid(s.listOutbox(0), 'limit');
        await rejectsInvalid(s.listOutbox(1001), 'limit');
        expect(await s.listOutbox(1000)).toEqual([]);
        const seqs = Array.from({ length: 1000 }, (_, i) => i + 1);
        await s.deleteOutbox(seqs);
        await rejectsInvalid(s.deleteOutbox([...seqs, 1001]), 'seqs');
        await rejectsInvalid(s.deleteOutbox([0]), 'seqs');
        await rejectsInvalid(s.deleteOutbox('1' as unknown as number[]), 'seqs');
      });

      it.runIf(caps.persistent)('unpublished rows survive a reopen', async () => {
        const g = await s.createGroup(group());
        await s.rotateGroupKey(g.sgId, randomBytes(32), 'create', { ...KC, outbox: true });
        const before = await s.listOutbox();
        await reopen();
        expect(await s.listOutbox()).toEqual(before);
      });
    });

    describe('GW session leases (docs/cluster.md)', () => {
      it('each acquisition raises the generation by one; the last holder is the current one', async () => {
        const gw = gwId();
        expect(await s.getGwLease(gw)).toBeUndefined();
        const a = await s.acquireGwLease(gw, 'node-a', { at: 1000 });
        expect(a).toEqual({ gwId: gw, nodeId: 'node-a', generation: 1, acquiredAt: 1000 });
        const b = await s.acquireGwLease(gw, 'node-b', { at: 2000, outbox: true });
        expect(b.generation).toBe(2);
        const again = await s.acquireGwLease(gw, 'node-b', { at: 3000 }); // a reconnect to the same node
        expect(again.generation).toBe(3);
        expect(await s.getGwLease(gw)).toEqual(again);
        expect(await s.listGwLeases()).toEqual([again]);
        expect((await s.listOutbox()).map((r) => [r.kind, r.body])).toEqual([
          ['gw.lease', { gwId: gw, nodeId: 'node-b', generation: 2, node: 'node-b' }],
        ]);
      });

      it('concurrent acquisitions get distinct, consecutive generations', async () => {
        const gw = gwId();
        const got = await Promise.all(
          Array.from({ length: 20 }, (_, i) => s.acquireGwLease(gw, `n${i % 3}`)),
        );
        expect(got.map((l) => l.generation).sort((x, y) => x - y)).toEqual(
          Array.from({ length: 20 }, (_, i) => i + 1),
        );
        expect((await s.getGwLease(gw))!.generation).toBe(20);
      });

      it('refuses a bad GW id or node id before any write', async () => {
        await rejectsInvalid(s.acquireGwLease('urn:cpns:pne:x', 'n1'), 'gwId');
        await rejectsInvalid(s.acquireGwLease(gwId(), 'bad node'), 'nodeId');
        await rejectsInvalid(s.acquireGwLease(gwId(), `n${'x'.repeat(64)}`), 'nodeId');
        expect(await s.listGwLeases()).toEqual([]);
      });
    });

    describe('audit log', () => {
      it('appends and pages with filters', async () => {
        const g = await s.createGroup(group());
        const seqs: number[] = [];
        for (let i = 0; i < 25; i++) {
          seqs.push(
            await s.appendAudit({
              actor: 'server',
              action: i % 5 === 0 ? 'group.create' : 'key.rotate',
              sgId: i % 2 === 0 ? g.sgId : null,
              epoch: i,
              reason: 'manual',
              detail: { i, members: 3 },
              at: 1000 + i,
            }),
          );
        }
        expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
        const all = [];
        let after: number | null = 0;
        let pages = 0;
        while (after !== null) {
          const page = await s.listAudit({ afterSeq: after, limit: 10 });
          all.push(...page.entries);
          after = page.nextAfterSeq;
          pages++;
        }
        expect(pages).toBe(3);
        expect(all.map((e) => e.seq)).toEqual(seqs);
        expect(all[3]).toEqual({
          seq: seqs[3],
          at: 1003,
          actor: 'server',
          action: 'key.rotate',
          sgId: null,
          subject: null,
          epoch: 3,
          reason: 'manual',
          detail: { i: 3, members: 3 },
        });
        expect((await s.listAudit({ sgId: g.sgId, limit: 1000 })).entries).toHaveLength(13);
        expect((await s.listAudit({ action: 'group.create' })).entries.map((e) => e.epoch)).toEqual([
          0, 5, 10, 15, 20,
        ]);
        const exact = await s.listAudit({ limit: 25 });
        expect(exact.nextAfterSeq).toBeNull();
      });

      it('lists newest first (paged with beforeSeq), filtered by exact actor and subject', async () => {
        const g = await s.createGroup(group());
        const alice = pneId();
        const bob = pneId();
        const seqs: number[] = [];
        for (let i = 0; i < 12; i++) {
          seqs.push(
            await s.appendAudit({
              actor: i % 3 === 0 ? 'operator:root' : i % 3 === 1 ? alice : 'server',
              action: i % 2 === 0 ? 'member.add' : 'key.fetch',
              sgId: g.sgId,
              subject: i % 4 === 0 ? bob : i % 4 === 1 ? alice : null,
              at: 1000 + i,
            }),
          );
        }
        // Newest first, paged backwards by the cursor, until the oldest page (no cursor).
        const pages: number[][] = [];
        let before: number | undefined;
        for (;;) {
          const page = await s.listAudit({
            order: 'desc',
            limit: 5,
            ...(before ? { beforeSeq: before } : {}),
          });
          pages.push(page.entries.map((e) => e.seq));
          expect(page.nextAfterSeq).toBeNull();
          if (page.nextBeforeSeq === null) break;
          before = page.nextBeforeSeq;
        }
        expect(pages.flat()).toEqual([...seqs].reverse());
        expect(pages.map((p) => p.length)).toEqual([5, 5, 2]);
        // Oldest first: the other cursor; both bounds together are a range.
        const asc = await s.listAudit({ limit: 5 });
        expect(asc.nextBeforeSeq).toBeNull();
        expect(asc.nextAfterSeq).toBe(seqs[4]);
        const range = await s.listAudit({ afterSeq: seqs[2]!, beforeSeq: seqs[6]!, order: 'desc' });
        expect(range.entries.map((e) => e.seq)).toEqual([seqs[5], seqs[4], seqs[3]]);
        // Exact filters, combined with each other and with order.
        const byRoot = await s.listAudit({ actor: 'operator:root' });
        expect(byRoot.entries.map((e) => e.seq)).toEqual([seqs[0], seqs[3], seqs[6], seqs[9]]);
        const aboutBob = await s.listAudit({ subject: bob, order: 'desc' });
        expect(aboutBob.entries.map((e) => e.seq)).toEqual([seqs[8], seqs[4], seqs[0]]);
        const aliceAboutAlice = await s.listAudit({ actor: alice, subject: alice });
        expect(aliceAboutAlice.entries.map((e) => e.seq)).toEqual([seqs[1]]);
        const rootAdds = await s.listAudit({ actor: 'operator:root', action: 'member.add', sgId: g.sgId });
        expect(rootAdds.entries.map((e) => e.seq)).toEqual([seqs[0], seqs[6]]);
        expect((await s.listAudit({ actor: 'operator' })).entries).toEqual([]);
        expect((await s.listAudit({ subject: alice.toUpperCase() })).entries).toEqual([]);
        // A value that looks like SQL is a value.
        expect((await s.listAudit({ actor: "x' OR '1'='1" })).entries).toEqual([]);
        await rejectsInvalid(s.listAudit({ actor: '' }), 'actor');
        await rejectsInvalid(s.listAudit({ subject: 'a\nb' }), 'subject');
        await rejectsInvalid(s.listAudit({ beforeSeq: 0 }), 'beforeSeq');
        await rejectsInvalid(s.listAudit({ order: 'sideways' as 'asc' }), 'order');
      });

      it('is append-only at the SQL level', async () => {
        await s.appendAudit({ actor: 'server', action: 'key.rotate' });
        await expect(h.raw(s, "UPDATE audit_log SET actor = 'mallory'")).rejects.toThrow(/append-only/);
        await expect(h.raw(s, 'DELETE FROM audit_log')).rejects.toThrow(/append-only/);
        expect((await s.listAudit()).entries[0]?.actor).toBe('server');
      });

      it('never accepts key material', async () => {
        const e = { actor: 'server', action: 'key.rotate' };
        await rejectsInvalid(s.appendAudit({ ...e, detail: { key: 'aa' } }), 'detail');
        await rejectsInvalid(s.appendAudit({ ...e, detail: { nested: { groupKey: 'aa' } } }), 'detail');
        await rejectsInvalid(s.appendAudit({ ...e, detail: { blob: randomBytes(32) } }), 'detail');
        await rejectsInvalid(s.appendAudit({ ...e, detail: { n: Number.NaN } }), 'detail');
        await rejectsInvalid(s.appendAudit({ ...e, detail: { big: 'x'.repeat(9000) } }), 'detail');
        await rejectsInvalid(s.appendAudit({ ...e, action: 'Key Rotate' }), 'action');
        await rejectsInvalid(s.appendAudit({ ...e, actor: '' }), 'actor');
        await rejectsInvalid(s.listAudit({ limit: 0 }), 'limit');
        await rejectsInvalid(s.listAudit({ limit: 1001 }), 'limit');
      });

      it('refuses NUL characters in JSON and certificates on every backend', async () => {
        const e = { actor: 'server', action: 'key.rotate' };
        await rejectsInvalid(s.appendAudit({ ...e, detail: { note: 'a\u0000b' } }), 'detail');
        await rejectsInvalid(s.appendAudit({ ...e, detail: { 'a\u0000': 1 } }), 'detail');
        await rejectsInvalid(s.createGroup(group({ deliveryPolicy: { x: ['\u0000'] } })), 'deliveryPolicy');
        await rejectsInvalid(
          s.putIdentity({ id: pneId(), role: 'pne', certSerial: '01', certPem: `${PEM}\u0000` }),
          'certPem',
        );
        expect((await s.listAudit()).entries).toEqual([]);
      });
    });

    // ------------------------------------------------------------ lifecycle

    it('close is idempotent and later calls fail with CLOSED', async () => {
      await s.close();
      await s.close();
      await rejectsStore(s.listGroups(), 'CLOSED');
      s = await h.open();
    });
  });
}
