/**
 * Real processes: a GW started with CPNS_KEY keeps no plain private key on disk and restarts with the same key;
 * without it, or with another one, it refuses to start (typed error, exit 1) and leaves its credentials alone.
 * A PNE enrolled with --key-file likewise.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const bin = fileURLToPath(new URL('../../bin/cpns.mjs', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'cpns-cli-keys-'));
const children: ChildProcess[] = [];
const env: Record<string, string | undefined> = { ...process.env, CPNS_LOG_LEVEL: 'warn' };
delete env.CPNS_KEY;
delete env.CPNS_TOKEN;

afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  rmSync(root, { recursive: true, force: true });
});

type Daemon = ChildProcess & { lines: string[]; logs: string[] };

function daemon(args: string[], extraEnv: Record<string, string> = {}): Daemon {
  const child = spawn(process.execPath, [bin, ...args], {
    env: { ...env, ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const logs: string[] = [];
  child.stdout!.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)));
  child.stderr!.on('data', (d: Buffer) => logs.push(d.toString()));
  children.push(child);
  return Object.assign(child, { lines, logs });
}

/** One cpns command to its end: exit code, stdout, stderr. */
async function run(args: string[], extraEnv: Record<string, string> = {}) {
  const c = daemon(args, extraEnv);
  const code = await exited(c);
  return { code, stdout: c.lines.join('\n'), stderr: c.logs.join('') };
}

const exited = (c: ChildProcess) =>
  new Promise<number | null>((r) =>
    c.exitCode !== null ? r(c.exitCode) : c.once('exit', (code) => r(code)),
  );

async function until<T>(f: () => T | undefined, what: Daemon[], ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end)
      throw new Error(`timed out; logs:\n${what.map((d) => d.logs.join('')).join('\n---\n')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const readJson = (path: string) => {
  try {
    return existsSync(path) ? JSON.parse(readFileSync(path, 'utf8')) : undefined;
  } catch {
    return undefined;
  }
};

/** Every file under `dir` whose bytes contain `needle`. */
function grep(dir: string, needle: string): string[] {
  const hits: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    const p = join(e.parentPath, e.name);
    if (readFileSync(p).includes(needle)) hits.push(p);
  }
  return hits;
}

describe('GW and PNE private keys at rest, real processes', () => {
  it('a GW with CPNS_KEY keeps no plain private key, restarts with it, refuses to start without it', async () => {
    const S = join(root, 'server');
    const server = daemon([
      'server',
      '--data-dir',
      S,
      '--port',
      '0',
      '--enroll-port',
      '0',
      '--admin-port',
      '0',
    ]);
    const info = await until(() => readJson(join(S, 'server.json')), [server]);
    const ca = join(S, 'ca.pem');
    const token = await run(['admin', 'token', 'create', '--role', 'gw', '--data-dir', S]);
    expect(token.code).toBe(0);

    const G = join(root, 'gw');
    const key = randomBytes(32).toString('hex');
    const gwArgs = [
      'gateway',
      '--data-dir',
      G,
      '--server',
      info.url,
      '--ca',
      ca,
      '--port',
      '0',
      '--enroll-port',
      '0',
    ];
    // a key on the command line is refused (usage error), before anything is written
    const onArgv = await run([...gwArgs, '--key', key], { CPNS_TOKEN: token.stdout });
    expect(onArgv.code).toBe(2);
    expect(onArgv.stderr).toMatch(/--key is not accepted.*--key-file.*CPNS_KEY/);
    expect(existsSync(G)).toBe(false);

    const gw1 = daemon([...gwArgs, '--enroll-url', info.enrollUrl], {
      CPNS_TOKEN: token.stdout,
      CPNS_KEY: key,
    });
    const first = await until(() => readJson(join(G, 'gateway.json')), [gw1, server]);
    expect(first.identity).toMatch(/^urn:cpns:gw:/);
    expect(grep(G, 'PRIVATE KEY')).toEqual([]);
    const credPath = join(G, 'credentials.json');
    const cred = JSON.parse(readFileSync(credPath, 'utf8'));
    expect(cred).toMatchObject({ format: 'cpns-credentials/1', identity: first.identity });
    expect(cred).not.toHaveProperty('keyPem');
    expect(statSync(credPath).mode & 0o777).toBe(0o600);
    expect(grep(G, key)).toEqual([]);
    gw1.kill('SIGTERM');
    expect(await exited(gw1)).toBe(0);
    const sealed = readFileSync(credPath);

    // no key, or another key: exit 1 with a typed error naming no key bytes; credentials.json untouched
    for (const [extra, code] of [
      [{}, 'KEY_REQUIRED'],
      [{ CPNS_KEY: randomBytes(32).toString('hex') }, 'KEY_MISMATCH'],
      [{ CPNS_KEY: 'not-a-key' }, 'KEY_INVALID'],
    ] as const) {
      const r = await run(gwArgs, extra);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toContain(`cpns: ${code}: `);
      expect(r.stderr).not.toContain(key);
      expect(readFileSync(credPath).equals(sealed)).toBe(true);
    }

    // the same key (from a 0600 key file this time): same identity, no enrollment token needed
    const keyFile = join(root, 'gw.key');
    writeFileSync(keyFile, `${key}\n`, { mode: 0o600 });
    rmSync(join(G, 'gateway.json'));
    const gw2 = daemon([...gwArgs, '--key-file', keyFile]);
    const second = await until(() => readJson(join(G, 'gateway.json')), [gw2, server]);
    expect(second.identity).toBe(first.identity);
    expect(grep(G, 'PRIVATE KEY')).toEqual([]);

    // a PNE enrolled through that GW with --key-file: no plain private key in its data directory either
    const P = join(root, 'pne');
    const pneToken = await run(['admin', 'token', 'create', '--role', 'pne', '--data-dir', S]);
    const pneArgs = ['--data-dir', P, '--gw', second.url, '--ca', ca, '--key-file', keyFile];
    const created = await run(
      ['pne', 'group', 'create', '--name', 'sealed', ...pneArgs, '--enroll-url', second.enrollUrl],
      { CPNS_TOKEN: pneToken.stdout },
    );
    expect(created.code, created.stderr).toBe(0);
    expect(JSON.parse(created.stdout).epoch).toBe(1);
    expect(grep(P, 'PRIVATE KEY')).toEqual([]);
    // ... and it reconnects with the same key
    const again = await run(['pne', 'group', 'create', '--name', 'sealed-2', ...pneArgs]);
    expect(again.code, again.stderr).toBe(0);
    const noKey = await run([
      'pne',
      'group',
      'create',
      '--name',
      'x',
      '--data-dir',
      P,
      '--gw',
      second.url,
      '--ca',
      ca,
    ]);
    expect(noKey.code).toBe(1);
    expect(noKey.stderr).toContain('cpns: KEY_REQUIRED: ');

    gw2.kill('SIGTERM');
    server.kill('SIGTERM');
    expect(await exited(gw2)).toBe(0);
    expect(await exited(server)).toBe(0);
  }, 180_000);
});
