import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Credentials } from '../gateway/index.js';

/** Credentials of an enrolled GW or PNE in its data directory; the private key file is 0600. */
export function loadCredentials(dataDir: string): Credentials | undefined {
  const path = join(dataDir, 'credentials.json');
  if (!existsSync(path)) return undefined;
  return JSON.parse(readFileSync(path, 'utf8')) as Credentials;
}

export function saveCredentials(dataDir: string, c: Credentials): void {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const path = join(dataDir, 'credentials.json');
  writeFileSync(path, JSON.stringify(c, null, 2), { mode: 0o600 });
  chmodSync(path, 0o600);
}

/** Writes `<dataDir>/<name>` atomically (temp file + rename): a reader never sees half a file. */
export function writeJson(dataDir: string, name: string, value: unknown): void {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const tmp = join(dataDir, `.${name}.${process.pid}.tmp`);
  writeFileSync(tmp, `${JSON.stringify(value, null, 2)}\n`);
  renameSync(tmp, join(dataDir, name));
}

export function readText(path: string): string {
  return readFileSync(path, 'utf8');
}
