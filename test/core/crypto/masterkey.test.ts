import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadOrCreateMasterKey, parseMasterKey } from '../../../src/core/crypto/masterkey.js';

const posix = process.platform !== 'win32';

describe('master key', () => {
  const dirs: string[] = [];
  const tmp = () => {
    const d = mkdtempSync(join(tmpdir(), 'cpns-mk-'));
    dirs.push(d);
    return d;
  };
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('creates a 0600 hex key file once, then loads the same key', () => {
    const dataDir = join(tmp(), 'data');
    const a = loadOrCreateMasterKey({ dataDir, env: {} });
    expect(a.source).toBe('created');
    expect(a.key).toHaveLength(32);
    expect(readFileSync(a.path!, 'utf8')).toBe(`${a.key.toString('hex')}\n`);
    if (posix) {
      expect(statSync(a.path!).mode & 0o777).toBe(0o600);
      expect(statSync(dataDir).mode & 0o077).toBe(0);
    }
    const b = loadOrCreateMasterKey({ dataDir, env: {} });
    expect(b.source).toBe('file');
    expect(b.key.equals(a.key)).toBe(true);
  });

  it('prefers CPNS_MASTER_KEY and validates it', () => {
    const hex = 'ab'.repeat(32);
    const k = loadOrCreateMasterKey({ dataDir: tmp(), env: { CPNS_MASTER_KEY: hex } });
    expect(k).toMatchObject({ source: 'env', path: undefined });
    expect(k.key.toString('hex')).toBe(hex);
    for (const badKey of ['ab'.repeat(31), 'zz'.repeat(32), 'ab'.repeat(33), `${'ab'.repeat(31)}a`]) {
      expect(() => loadOrCreateMasterKey({ dataDir: tmp(), env: { CPNS_MASTER_KEY: badKey } })).toThrow(
        expect.objectContaining({
          name: 'MasterKeyError',
          code: 'MASTER_KEY_INVALID',
          field: 'CPNS_MASTER_KEY',
        }),
      );
    }
  });

  it('rejects a malformed key file', () => {
    const dataDir = tmp();
    writeFileSync(join(dataDir, 'master.key'), 'not hex at all', { mode: 0o600 });
    expect(() => loadOrCreateMasterKey({ dataDir, env: {} })).toThrow(
      expect.objectContaining({ code: 'MASTER_KEY_INVALID' }),
    );
  });

  it.runIf(posix)('refuses a key file readable by others', () => {
    const dataDir = tmp();
    const path = join(dataDir, 'master.key');
    writeFileSync(path, 'cd'.repeat(32));
    chmodSync(path, 0o644);
    expect(() => loadOrCreateMasterKey({ dataDir, env: {} })).toThrow(
      expect.objectContaining({ code: 'MASTER_KEY_PERMISSIONS' }),
    );
  });

  it('parseMasterKey accepts surrounding whitespace only', () => {
    expect(parseMasterKey(` ${'0F'.repeat(32)}\n`).toString('hex')).toBe('0f'.repeat(32));
    expect(() => parseMasterKey('0f'.repeat(16))).toThrow(
      expect.objectContaining({ code: 'MASTER_KEY_INVALID' }),
    );
  });
});
