import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { aeadOpen, aeadSeal, NONCE_BYTES, Suite, TAG_BYTES } from '../core/crypto/aead.js';
import { constantTimeEqual } from '../core/crypto/bytes.js';
import { hkdfSha256 } from '../core/crypto/hkdf.js';
import type { Credentials } from '../gateway/index.js';
import { DaemonError } from './usage.js';

/**
 * Credentials of an enrolled GW or PNE in its data directory (`credentials.json`, mode 0600, data dir 0700), and
 * the optional sealing of their private key under a key-encryption key (docs/operator.md, "Keys at rest on GWs
 * and PNEs").
 *
 * - Default (no key given): the PKCS#8 private key is stored as plain PEM; the file is 0600. A device without a
 *   secure element has nowhere better to keep a key-encryption key than beside the key itself; the operator
 *   decides whether a separate key (another mount, a secret manager, a TPM-unsealed file) is worth it.
 * - Sealed (`--key-file <path>` or CPNS_KEY: 64 hex digits = 32 bytes): the private key is AES-256-GCM ciphertext
 *   under a key derived from it (HKDF-SHA256), with a random 96-bit nonce and AAD binding the format version and
 *   the identity; the certificate, the CA and the identity stay readable. A key id (also HKDF-derived, 64 bits)
 *   tells a wrong key (KEY_MISMATCH) from an altered file (CREDENTIALS_TAMPERED).
 *
 * Errors are CredentialsError (a DaemonError: `cpns: <code>: <message>`, exit 1); no message carries key bytes.
 * A failed load writes nothing.
 */

export const CREDENTIALS_FILE = 'credentials.json';
/** Environment variable of the key-encryption key (64 hex digits); `--key-file <path>` wins over it. */
export const KEY_ENV = 'CPNS_KEY';
/** `format` of a credentials file whose private key is sealed. (Plain files have no `format`: the original layout.) */
export const SEALED_FORMAT = 'cpns-credentials/1';

export type CredentialsErrorCode =
  /** The key (file or CPNS_KEY) is not 64 hex digits. */
  | 'KEY_INVALID'
  /** The key file cannot be read, or is accessible by group/other. */
  | 'KEY_FILE_UNREADABLE'
  | 'KEY_FILE_PERMISSIONS'
  /** The private key is sealed and no key was given. */
  | 'KEY_REQUIRED'
  /** The private key is sealed under another key. */
  | 'KEY_MISMATCH'
  /** The sealed key does not authenticate under the right key (the file was altered, e.g. its identity). */
  | 'CREDENTIALS_TAMPERED'
  /** credentials.json is not a credentials file of a known format. */
  | 'CREDENTIALS_MALFORMED';

export class CredentialsError extends DaemonError<CredentialsErrorCode> {
  constructor(code: CredentialsErrorCode, message: string) {
    super(code, message);
    this.name = 'CredentialsError';
  }
}

const HEX64 = /^[0-9a-fA-F]{64}$/;
const SALT = Buffer.from('cpns key at rest v1');
const WRAP_INFO = Buffer.from('cpns credentials private key');
const ID_INFO = Buffer.from('cpns key id');

interface SealedKey {
  alg: 'aes-256-gcm';
  kdf: 'hkdf-sha256';
  /** HKDF(kek, "cpns key id"), 8 bytes hex: which key sealed it (says nothing about the key). */
  keyId: string;
  nonce: string;
  /** base64 of ciphertext || tag */
  ciphertext: string;
}

interface SealedFile {
  format: typeof SEALED_FORMAT;
  identity: string;
  certPem: string;
  caPem: string;
  sealedKey: SealedKey;
}

function parseKey(text: string, from: string): Buffer {
  const t = text.trim();
  if (!HEX64.test(t))
    throw new CredentialsError(
      'KEY_INVALID',
      `${from} must hold the key as 64 hex digits (32 random bytes, e.g. \`openssl rand -hex 32\`)`,
    );
  return Buffer.from(t, 'hex');
}

/**
 * The key-encryption key: from `keyFile` (64 hex digits, optional trailing newline; not accessible by
 * group/other), else from CPNS_KEY; undefined when neither is given (private keys stay plain PEM, mode 0600).
 */
export function readKeyEncryptionKey(
  keyFile: string | undefined,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Buffer | undefined {
  if (keyFile !== undefined) {
    let text: string;
    try {
      if (process.platform !== 'win32' && (statSync(keyFile).mode & 0o077) !== 0)
        throw new CredentialsError(
          'KEY_FILE_PERMISSIONS',
          `key file ${keyFile} must not be accessible by group/other (chmod 600)`,
        );
      text = readFileSync(keyFile, 'utf8');
    } catch (e) {
      if (e instanceof CredentialsError) throw e;
      throw new CredentialsError(
        'KEY_FILE_UNREADABLE',
        `cannot read key file ${keyFile} (${(e as NodeJS.ErrnoException).code ?? 'error'})`,
      );
    }
    return parseKey(text, `key file ${keyFile}`);
  }
  const v = env[KEY_ENV];
  if (v === undefined || v === '') return undefined;
  return parseKey(v, KEY_ENV);
}

const aadOf = (identity: string) => Buffer.from(`${SEALED_FORMAT}\0${identity}`, 'utf8');

function derive(kek: Buffer): { wrap: Buffer; keyId: Buffer } {
  if (kek.length !== 32) throw new CredentialsError('KEY_INVALID', 'the key must be 32 bytes');
  return { wrap: hkdfSha256(kek, SALT, WRAP_INFO, 32), keyId: hkdfSha256(kek, SALT, ID_INFO, 8) };
}

function sealCredentials(c: Credentials, kek: Buffer): SealedFile {
  const { wrap, keyId } = derive(kek);
  const nonce = randomBytes(NONCE_BYTES);
  const plain = Buffer.from(c.keyPem, 'utf8');
  try {
    const ct = aeadSeal(Suite.AES_256_GCM, wrap, nonce, aadOf(c.identity), plain);
    return {
      format: SEALED_FORMAT,
      identity: c.identity,
      certPem: c.certPem,
      caPem: c.caPem,
      sealedKey: {
        alg: 'aes-256-gcm',
        kdf: 'hkdf-sha256',
        keyId: keyId.toString('hex'),
        nonce: nonce.toString('base64'),
        ciphertext: ct.toString('base64'),
      },
    };
  } finally {
    plain.fill(0);
    wrap.fill(0);
  }
}

const malformed = (what: string) =>
  new CredentialsError('CREDENTIALS_MALFORMED', `credentials file is malformed (${what})`);
const isStr = (v: unknown): v is string => typeof v === 'string' && v.length > 0;

function unseal(f: Record<string, unknown>, kek: Buffer | undefined, path: string): Credentials {
  const s = f.sealedKey as Partial<SealedKey> | undefined;
  if (
    !isStr(f.identity) ||
    !isStr(f.certPem) ||
    !isStr(f.caPem) ||
    typeof s !== 'object' ||
    s === null ||
    s.alg !== 'aes-256-gcm' ||
    s.kdf !== 'hkdf-sha256' ||
    !isStr(s.keyId) ||
    !isStr(s.nonce) ||
    !isStr(s.ciphertext)
  )
    throw malformed('sealed key fields');
  if (!kek)
    throw new CredentialsError(
      'KEY_REQUIRED',
      `the private key in ${path} is sealed: give its key with --key-file <path> or ${KEY_ENV}`,
    );
  const { wrap, keyId } = derive(kek);
  try {
    if (!constantTimeEqual(keyId, Buffer.from(s.keyId, 'hex')))
      throw new CredentialsError(
        'KEY_MISMATCH',
        `the private key in ${path} is sealed under another key (--key-file / ${KEY_ENV})`,
      );
    const nonce = Buffer.from(s.nonce, 'base64');
    const ct = Buffer.from(s.ciphertext, 'base64');
    if (nonce.length !== NONCE_BYTES || ct.length <= TAG_BYTES) throw malformed('nonce or ciphertext size');
    let plain: Buffer;
    try {
      plain = aeadOpen(Suite.AES_256_GCM, wrap, nonce, aadOf(f.identity), ct);
    } catch {
      throw new CredentialsError(
        'CREDENTIALS_TAMPERED',
        `the sealed private key in ${path} does not authenticate: the file was altered`,
      );
    }
    const keyPem = plain.toString('utf8');
    plain.fill(0);
    return { identity: f.identity, certPem: f.certPem, keyPem, caPem: f.caPem };
  } finally {
    wrap.fill(0);
  }
}

/** Whether the credentials of `dataDir` are absent, stored with a plain private key, or sealed. */
export function credentialsState(dataDir: string): 'absent' | 'plain' | 'sealed' {
  const path = join(dataDir, CREDENTIALS_FILE);
  if (!existsSync(path)) return 'absent';
  return readFile(path).format === SEALED_FORMAT ? 'sealed' : 'plain';
}

function readFile(path: string): Record<string, unknown> {
  let f: unknown;
  try {
    f = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    throw malformed('not JSON');
  }
  if (typeof f !== 'object' || f === null || Array.isArray(f)) throw malformed('not an object');
  return f as Record<string, unknown>;
}

/**
 * The credentials of an enrolled GW or PNE, or undefined before its first enrollment. `kek`: the key-encryption
 * key, required when the private key is sealed. A plain file loaded with a key is sealed under it at once
 * (atomic rewrite; `onSealed` is told): giving a key to a device enrolled without one protects its key from then
 * on. Every failure throws CredentialsError and leaves the file as it was.
 */
export function loadCredentials(
  dataDir: string,
  o: { kek?: Buffer | undefined; onSealed?: () => void } = {},
): Credentials | undefined {
  const path = join(dataDir, CREDENTIALS_FILE);
  if (!existsSync(path)) return undefined;
  const f = readFile(path);
  if (f.format === SEALED_FORMAT) return unseal(f, o.kek, path);
  if (f.format !== undefined) throw malformed('unknown format');
  if (!isStr(f.identity) || !isStr(f.certPem) || !isStr(f.keyPem) || !isStr(f.caPem))
    throw malformed('fields');
  const c: Credentials = { identity: f.identity, certPem: f.certPem, keyPem: f.keyPem, caPem: f.caPem };
  if (o.kek) {
    saveCredentials(dataDir, c, o.kek);
    o.onSealed?.();
  }
  return c;
}

/**
 * Writes the credentials atomically (temp file 0600 + rename; data dir 0700). With `kek` the private key is
 * sealed; without it, it is plain PEM in a 0600 file.
 */
export function saveCredentials(dataDir: string, c: Credentials, kek?: Buffer): void {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const body = kek ? sealCredentials(c, kek) : c;
  const path = join(dataDir, CREDENTIALS_FILE);
  const tmp = join(dataDir, `.${CREDENTIALS_FILE}.${process.pid}.tmp`);
  try {
    writeFileSync(tmp, `${JSON.stringify(body, null, 2)}\n`, { mode: 0o600 });
    chmodSync(tmp, 0o600); // whatever the umask
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** Writes `<dataDir>/<name>` atomically (temp file + rename): a reader never sees half a file. */
export function writeJson(dataDir: string, name: string, value: unknown): void {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const tmp = join(dataDir, `.${name}.${process.pid}.tmp`);
  writeFileSync(tmp, `${JSON.stringify(value, null, 2)}\n`);
  renameSync(tmp, join(dataDir, name));
}

/**
 * A text file the user named; `what` says what it is and which flag sets it ("CA certificate (--ca, CPNS_CA)").
 * A missing or unreadable file is a DaemonError naming it (FILE_NOT_FOUND / FILE_UNREADABLE, exit 1).
 */
export function readText(path: string, what = 'file'): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw fileError(e, path, what);
  }
}

/** FILE_NOT_FOUND / FILE_UNREADABLE for a failed read of `path` (no raw Node error text). */
export function fileError(e: unknown, path: string, what: string): DaemonError {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return new DaemonError('FILE_NOT_FOUND', `${what}: ${path}: no such file`);
  const why =
    code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : 'cannot be read';
  return new DaemonError('FILE_UNREADABLE', `${what}: ${path}: ${why}`);
}
