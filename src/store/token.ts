import { createHash } from 'node:crypto';

/** SHA-256 of an enrollment token as 64 lowercase hex: the only form in which tokens are stored. */
export function hashToken(token: string | Uint8Array): string {
  return createHash('sha256').update(token).digest('hex');
}
