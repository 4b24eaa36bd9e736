/** Named server secrets (CA private key, GW tree secrets...), sealed under the master key, AAD-bound to the name. */

import * as v from '../validate.js';
import type { Ctx } from './db.js';

export function putSecret(ctx: Ctx, name: string, value: Uint8Array): void {
  const n = v.secretName(name);
  const sealed = ctx.sealer.seal(v.secretValue(value), 'secret', n);
  ctx.db
    .prepare(
      `INSERT INTO secrets (name, nonce, ct, updated_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET nonce = excluded.nonce, ct = excluded.ct, updated_at = excluded.updated_at`,
    )
    .run(n, sealed.nonce, sealed.ct, ctx.now());
}

export function getSecret(ctx: Ctx, name: string): Buffer | undefined {
  const n = v.secretName(name);
  const r = ctx.db.prepare('SELECT nonce, ct FROM secrets WHERE name = ?').get(n) as
    | { nonce: Buffer; ct: Buffer }
    | undefined;
  return r === undefined ? undefined : ctx.sealer.open(r, 'secret', n);
}

export function deleteSecret(ctx: Ctx, name: string): boolean {
  return ctx.db.prepare('DELETE FROM secrets WHERE name = ?').run(v.secretName(name)).changes === 1;
}
