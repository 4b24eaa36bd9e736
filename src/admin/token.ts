import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ADMIN_DEFAULTS } from './defaults.js';

/**
 * The operator's bearer token: `<dataDir>/admin.token` (mode 0600), 256 random bits, created on first start.
 * Whoever can read it is the operator (docs/operator.md).
 */
export function loadOrCreateAdminToken(dataDir: string): string {
  const path = join(dataDir, 'admin.token');
  if (existsSync(path)) {
    const token = readFileSync(path, 'utf8').trim();
    if (token.length < ADMIN_DEFAULTS.minTokenLength) {
      throw new Error(
        `${path}: admin token too short (at least ${ADMIN_DEFAULTS.minTokenLength} characters)`,
      );
    }
    return token;
  }
  const token = randomBytes(32).toString('base64url');
  writeFileSync(path, `${token}\n`, { mode: 0o600, flag: 'wx' });
  chmodSync(path, 0o600);
  return token;
}
