/** Named server secrets (CA private key, GW tree secrets...), sealed under the master key, AAD-bound to the name. */

import * as v from '../validate.js';
import { type Ctx, one, run } from './db.js';

export async function putSecret(ctx: Ctx, name: string, value: Uint8Array): Promise<void> {
  const n = v.secretName(name);
  const sealed = ctx.sealer.seal(v.secretValue(value), 'secret', n);
  await run(
    ctx.pool,
    `INSERT INTO secrets (name, nonce, ct, updated_at) VALUES ($1, $2, $3, $4)
     ON CONFLICT (name) DO UPDATE SET nonce = excluded.nonce, ct = excluded.ct, updated_at = excluded.updated_at`,
    [n, sealed.nonce, sealed.ct, ctx.now()],
  );
}

export async function getSecret(ctx: Ctx, name: string): Promise<Buffer | undefined> {
  const n = v.secretName(name);
  const r = await one<{ nonce: Buffer; ct: Buffer }>(
    ctx.pool,
    'SELECT nonce, ct FROM secrets WHERE name = $1',
    [n],
  );
  return r === undefined ? undefined : ctx.sealer.open(r, 'secret', n);
}

export async function deleteSecret(ctx: Ctx, name: string): Promise<boolean> {
  return (await run(ctx.pool, 'DELETE FROM secrets WHERE name = $1', [v.secretName(name)])) === 1;
}
