/**
 * A master key file: 32 bytes that encrypt secrets at rest — the CPNS Server's store (src/store/at-rest.ts; loaded
 * by whoever opens the store) and the PN GW's broadcast state (src/protocol/gateway-state.ts,
 * its own `gw-master.key`).
 *
 * Sources, first match wins:
 *  1. env CPNS_MASTER_KEY: exactly 64 hex digits (for containers / secret managers);
 *  2. file `<dataDir>/master.key`: 64 hex digits (+ optional trailing newline), mode 0600;
 *  3. otherwise a new random key is created in that file (mode 0600, data dir 0700), atomically: two
 *     processes starting at once end up with the same key (create-exclusive via link(2)).
 *
 * A malformed key is MASTER_KEY_INVALID; a key file readable or writable by group/other is refused with
 * MASTER_KEY_PERMISSIONS (POSIX only), like ssh does for private keys. Both are a `MasterKeyError` (same codes,
 * fields and texts as the store's StoreError had for them; core cannot raise the store's error type).
 *
 * The one file of core that touches the file system: it lives here because everything that needs it is above core
 * (protocol for the GW state, the store's public barrel, the composition roots), and nothing below them may do it.
 */
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { CodedError } from '../errors.js';

export type MasterKeyErrorCode = 'MASTER_KEY_INVALID' | 'MASTER_KEY_PERMISSIONS';

/** Family 'store': the codes are the store's (MASTER_KEY_*), and so are the wire and HTTP mappings (docs/errors.md). */
export class MasterKeyError extends CodedError<MasterKeyErrorCode> {
  readonly family = 'store';

  /** `field`: where the bad key came from: the env variable, 'path' (the file) or the caller's field name. */
  constructor(code: MasterKeyErrorCode, message: string, field?: string) {
    super(code, message, field);
    this.name = 'MasterKeyError';
  }
}

export const MASTER_KEY_ENV = 'CPNS_MASTER_KEY';
export const MASTER_KEY_FILE = 'master.key';
const HEX64 = /^[0-9a-fA-F]{64}$/;

export interface MasterKeyOptions {
  readonly dataDir: string;
  /** Defaults to process.env. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Defaults to 'master.key'. */
  readonly fileName?: string;
}

export interface MasterKey {
  readonly key: Buffer;
  readonly source: 'env' | 'file' | 'created';
  /** Path of the key file (undefined when taken from the environment). */
  readonly path: string | undefined;
}

/** Parses 64 hex digits (surrounding whitespace allowed) into 32 bytes. */
export function parseMasterKey(text: string, field = 'masterKey'): Buffer {
  const t = text.trim();
  if (!HEX64.test(t))
    throw new MasterKeyError('MASTER_KEY_INVALID', 'master key must be 64 hex digits', field);
  return Buffer.from(t, 'hex');
}

function readKeyFile(path: string): Buffer {
  if (process.platform !== 'win32') {
    const mode = statSync(path).mode & 0o777;
    if ((mode & 0o077) !== 0)
      throw new MasterKeyError(
        'MASTER_KEY_PERMISSIONS',
        'master key file must not be accessible by group/other',
        'path',
      );
  }
  return parseMasterKey(readFileSync(path, 'utf8'), 'path');
}

export function loadOrCreateMasterKey(opts: MasterKeyOptions): MasterKey {
  const env = opts.env ?? process.env;
  const fromEnv = env[MASTER_KEY_ENV];
  if (fromEnv !== undefined && fromEnv !== '') {
    return { key: parseMasterKey(fromEnv, MASTER_KEY_ENV), source: 'env', path: undefined };
  }
  const path = join(opts.dataDir, opts.fileName ?? MASTER_KEY_FILE);
  try {
    return { key: readKeyFile(path), source: 'file', path };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
  const key = randomBytes(32);
  // Write a complete temp file, then link it into place: link fails with EEXIST if another process won the race,
  // and a reader never sees a half-written key file.
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, `${key.toString('hex')}\n`);
  } finally {
    closeSync(fd);
  }
  chmodSync(tmp, 0o600); // in case of a permissive umask
  try {
    linkSync(tmp, path);
  } catch (e) {
    key.fill(0);
    if ((e as NodeJS.ErrnoException).code === 'EEXIST')
      return { key: readKeyFile(path), source: 'file', path };
    throw e;
  } finally {
    rmSync(tmp, { force: true });
  }
  return { key, source: 'created', path };
}
