/**
 * GW / PNE private keys at rest (src/cli/files.ts): plain PEM in a 0600 file by default, AES-256-GCM-sealed under
 * the key of --key-file / CPNS_KEY when one is given (docs/operator.md, "Keys at rest on GWs and PNEs").
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  CREDENTIALS_FILE,
  CredentialsError,
  credentialsState,
  KEY_ENV,
  loadCredentials,
  readKeyEncryptionKey,
  saveCredentials,
} from '../../src/cli/files.js';
import type { Credentials } from '../../src/gateway/index.js';

const root = mkdtempSync(join(tmpdir(), 'cpns-keys-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const dir = () => join(root, `d${++n}`);

const creds = (): Credentials => ({
  identity: `urn:cpns:gw:${randomBytes(16).toString('hex')}`,
  certPem: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
  keyPem: generateKeyPairSync('ec', { namedCurve: 'P-256' })
    .privateKey.export({ type: 'pkcs8', format: 'pem' })
    .toString(),
  caPem: '-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n',
});
const file = (d: string) => join(d, CREDENTIALS_FILE);
const mode = (p: string) => statSync(p).mode & 0o777;

/** The CredentialsError `f` throws (fails if it throws anything else or nothing). */
function errorOf(f: () => unknown): CredentialsError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(CredentialsError);
    return e as CredentialsError;
  }
  throw new Error('expected a CredentialsError');
}

describe('credentials at rest', () => {
  it('default: plain PEM, file 0600 and data dir 0700 (whatever the umask), loads back', () => {
    const d = dir();
    const c = creds();
    const old = process.umask(0o022);
    try {
      saveCredentials(d, c);
    } finally {
      process.umask(old);
    }
    expect(mode(file(d))).toBe(0o600);
    expect(mode(d)).toBe(0o700);
    expect(readFileSync(file(d), 'utf8')).toContain('PRIVATE KEY');
    expect(credentialsState(d)).toBe('plain');
    expect(loadCredentials(d)).toEqual(c);
    expect(readdirSync(d)).toEqual([CREDENTIALS_FILE]); // no temp file left
  });

  it('sealed: no plain key on disk, the identity and certificate stay readable, the right key opens it', () => {
    const d = dir();
    const c = creds();
    const kek = randomBytes(32);
    saveCredentials(d, c, kek);
    const text = readFileSync(file(d), 'utf8');
    expect(text).not.toContain('PRIVATE KEY');
    expect(text).not.toContain(c.keyPem.split('\n')[1]);
    expect(mode(file(d))).toBe(0o600);
    const f = JSON.parse(text);
    expect(f).toMatchObject({ format: 'cpns-credentials/1', identity: c.identity, certPem: c.certPem });
    expect(f.sealedKey).toMatchObject({ alg: 'aes-256-gcm', kdf: 'hkdf-sha256' });
    expect(Buffer.from(f.sealedKey.nonce, 'base64')).toHaveLength(12);
    expect(credentialsState(d)).toBe('sealed');
    expect(loadCredentials(d, { kek })).toEqual(c);
    // a fresh nonce each time the file is written
    saveCredentials(d, c, kek);
    expect(JSON.parse(readFileSync(file(d), 'utf8')).sealedKey.nonce).not.toBe(f.sealedKey.nonce);
  });

  it('wrong key, missing key, altered file: a typed error without key bytes, and the file is left as it was', () => {
    const d = dir();
    const c = creds();
    const kek = randomBytes(32);
    saveCredentials(d, c, kek);
    const before = readFileSync(file(d));
    const wrong = randomBytes(32);
    const cases: [string, () => unknown][] = [
      ['KEY_MISMATCH', () => loadCredentials(d, { kek: wrong })],
      ['KEY_REQUIRED', () => loadCredentials(d)],
    ];
    for (const [code, f] of cases) {
      const e = errorOf(f);
      expect(e.code).toBe(code);
      for (const k of [kek, wrong]) {
        expect(e.message).not.toContain(k.toString('hex'));
        expect(e.message).not.toContain(k.toString('base64'));
      }
      expect(readFileSync(file(d)).equals(before)).toBe(true);
    }

    // tampering: the ciphertext, the nonce, or the identity bound in the AAD
    const f = JSON.parse(before.toString());
    const ct = Buffer.from(f.sealedKey.ciphertext, 'base64');
    ct[5] = (ct[5] ?? 0) ^ 1;
    const nonce = Buffer.from(f.sealedKey.nonce, 'base64');
    nonce[0] = (nonce[0] ?? 0) ^ 1;
    const variants = [
      { ...f, sealedKey: { ...f.sealedKey, ciphertext: ct.toString('base64') } },
      { ...f, sealedKey: { ...f.sealedKey, nonce: nonce.toString('base64') } },
      { ...f, identity: `urn:cpns:gw:${randomBytes(16).toString('hex')}` },
    ];
    for (const v of variants) {
      const altered = JSON.stringify(v);
      writeFileSync(file(d), altered, { mode: 0o600 });
      expect(errorOf(() => loadCredentials(d, { kek })).code).toBe('CREDENTIALS_TAMPERED');
      expect(readFileSync(file(d), 'utf8')).toBe(altered);
    }
    writeFileSync(file(d), '{"format":"cpns-credentials/1","identity":"x"}');
    expect(errorOf(() => loadCredentials(d, { kek })).code).toBe('CREDENTIALS_MALFORMED');
    writeFileSync(file(d), 'not json');
    expect(errorOf(() => loadCredentials(d, { kek })).code).toBe('CREDENTIALS_MALFORMED');
    expect(readFileSync(file(d), 'utf8')).toBe('not json');
  });

  it('a plain file loaded with a key is sealed under it', () => {
    const d = dir();
    const c = creds();
    saveCredentials(d, c);
    const kek = randomBytes(32);
    let told = 0;
    expect(loadCredentials(d, { kek, onSealed: () => told++ })).toEqual(c);
    expect(told).toBe(1);
    expect(readFileSync(file(d), 'utf8')).not.toContain('PRIVATE KEY');
    expect(mode(file(d))).toBe(0o600);
    expect(loadCredentials(d, { kek })).toEqual(c);
    expect(errorOf(() => loadCredentials(d)).code).toBe('KEY_REQUIRED');
  });

  it('no credentials yet: undefined (first start enrolls)', () => {
    const d = dir();
    expect(loadCredentials(d, { kek: randomBytes(32) })).toBeUndefined();
    expect(credentialsState(d)).toBe('absent');
  });
});

describe('the key-encryption key: --key-file or CPNS_KEY, 64 hex digits', () => {
  const hex = randomBytes(32).toString('hex');

  it('from the environment, or from a 0600 file (which wins); none: undefined', () => {
    expect(readKeyEncryptionKey(undefined, {})).toBeUndefined();
    expect(readKeyEncryptionKey(undefined, { [KEY_ENV]: '' })).toBeUndefined();
    expect(readKeyEncryptionKey(undefined, { [KEY_ENV]: hex })?.toString('hex')).toBe(hex);
    const other = randomBytes(32).toString('hex');
    const p = join(root, 'kek');
    writeFileSync(p, `${other}\n`, { mode: 0o600 });
    expect(readKeyEncryptionKey(p, { [KEY_ENV]: hex })?.toString('hex')).toBe(other);
  });

  it('refuses a malformed key, an unreadable key file, a key file readable by group/other; never echoes it', () => {
    for (const bad of ['abc', `${hex}00`, Buffer.from(hex, 'hex').toString('base64'), `${hex.slice(2)}zz`]) {
      const e = errorOf(() => readKeyEncryptionKey(undefined, { [KEY_ENV]: bad }));
      expect(e.code).toBe('KEY_INVALID');
      expect(e.message).not.toContain(bad);
    }
    expect(errorOf(() => readKeyEncryptionKey(join(root, 'absent'), {})).code).toBe('KEY_FILE_UNREADABLE');
    const p = join(root, 'kek-open');
    writeFileSync(p, hex);
    chmodSync(p, 0o644);
    const e = errorOf(() => readKeyEncryptionKey(p, {}));
    expect(e.code).toBe('KEY_FILE_PERMISSIONS');
    expect(e.message).not.toContain(hex);
    chmodSync(p, 0o600);
    writeFileSync(p, 'short');
    expect(errorOf(() => readKeyEncryptionKey(p, {})).code).toBe('KEY_INVALID');
  });
});
