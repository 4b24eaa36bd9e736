import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const exec = promisify(execFile);
const bin = fileURLToPath(new URL('../../bin/cpns.mjs', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'cpns-cli-'));
const children: ChildProcess[] = [];
const env = { ...process.env, CPNS_LOG_LEVEL: 'warn' };

afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  rmSync(root, { recursive: true, force: true });
});

const cpns = async (...args: string[]) =>
  (await exec(process.execPath, [bin, ...args], { env, timeout: 30_000 })).stdout.trim();

function daemon(...args: string[]): ChildProcess & { lines: string[] } {
  const child = spawn(process.execPath, [bin, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  child.stdout!.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)));
  children.push(child);
  return Object.assign(child, { lines });
}

async function until<T>(f: () => T | undefined, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}

const exited = (c: ChildProcess) =>
  new Promise<number | null>((r) =>
    c.exitCode !== null ? r(c.exitCode) : c.once('exit', (code) => r(code)),
  );

describe('cpns server / gateway / pne / admin as separate processes', () => {
  it('enroll, form a Service Group, exchange a protected message, revoke, shut down gracefully', async () => {
    const S = join(root, 'server');
    const server = daemon('server', '--data-dir', S, '--port', '0', '--admin-port', '0');
    const info = await until(() =>
      existsSync(join(S, 'server.json'))
        ? JSON.parse(readFileSync(join(S, 'server.json'), 'utf8'))
        : undefined,
    );
    const ca = join(S, 'ca.pem');

    const gwToken = await cpns('admin', 'token', 'create', '--role', 'gw', '--data-dir', S);
    expect(gwToken).toMatch(/^\S{20,}$/);
    const G = join(root, 'gw');
    daemon('gateway', '--data-dir', G, '--server', info.url, '--ca', ca, '--token', gwToken);
    const gw = await until(() =>
      existsSync(join(G, 'gateway.json'))
        ? JSON.parse(readFileSync(join(G, 'gateway.json'), 'utf8'))
        : undefined,
    );
    expect(gw.identity).toMatch(/^urn:cpns:gw:/);

    const pne = (dir: string, ...a: string[]) => [
      'pne',
      ...a,
      '--data-dir',
      join(root, dir),
      '--gw',
      gw.url,
      '--ca',
      ca,
    ];
    const t1 = await cpns('admin', 'token', 'create', '--role', 'pne', '--data-dir', S);
    const created = JSON.parse(
      await cpns(...pne('p1', 'group', 'create', '--name', 'cli-group', '--open', '--token', t1)),
    );
    expect(created.epoch).toBe(1);
    const t2 = await cpns('admin', 'token', 'create', '--role', 'pne', '--data-dir', S);
    await cpns(...pne('p2', 'group', 'join', '--sg', created.sgId, '--token', t2));
    // a used token is refused
    await expect(cpns(...pne('p3', 'listen', '--token', t2))).rejects.toThrow(/ENROLL_REFUSED/);

    const listener = daemon(...pne('p2', 'listen'));
    await until(() => listener.lines.find((l) => l.includes('"ready"')));
    const sent = JSON.parse(
      await cpns(...pne('p1', 'send', '--sg', created.sgId, '--data', 'hello from p1')),
    );
    expect(sent.epoch).toBe(1);
    const msg = await until(() =>
      listener.lines.map((l) => JSON.parse(l)).find((e) => e.event === 'message'),
    );
    expect(msg.text).toBe('hello from p1');
    expect(msg.sgId).toBe(created.sgId);

    const status = JSON.parse(await cpns('admin', 'sg', 'status', created.sgId, '--data-dir', S));
    expect(status.members.length).toBe(2);
    const pns = JSON.parse(await cpns('admin', 'pns', '--data-dir', S));
    expect(JSON.stringify(pns)).toContain(gw.identity);

    // revoke the listening PNE: its session is closed at once; the group key is updated for the rest
    const p2 = JSON.parse(readFileSync(join(root, 'p2', 'credentials.json'), 'utf8')).identity as string;
    await cpns('admin', 'revoke', p2, '--data-dir', S);
    const groups = JSON.parse(await cpns('admin', 'sg', 'list', '--data-dir', S));
    const g = groups.find((x: { sgId: string }) => x.sgId === created.sgId);
    expect(g.members).not.toContain(p2);
    expect(g.currentEpoch).toBe(2);
    await expect(cpns(...pne('p2', 'send', '--sg', created.sgId, '--data', 'x'))).rejects.toThrow();

    // operator errors are typed
    await expect(
      cpns('admin', 'sg', 'rekey', '00000000-0000-4000-8000-000000000000', '--data-dir', S),
    ).rejects.toThrow(/NOT_FOUND/);

    server.kill('SIGTERM');
    expect(await exited(server)).toBe(0);
  }, 90_000);
});
