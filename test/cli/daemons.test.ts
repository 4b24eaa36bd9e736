import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:https';
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
  (await exec(process.execPath, [bin, ...args], { env, timeout: 60_000 })).stdout.trim();

function daemon(...args: string[]): ChildProcess & { lines: string[] } {
  const child = spawn(process.execPath, [bin, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  child.stdout!.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)));
  // keep the daemons' logs (stderr): a failing wait reports them
  child.stderr!.on('data', (d: Buffer) => {
    stderr.push(`[${args[0]}] ${d.toString()}`);
    if (stderr.length > 200) stderr.shift();
  });
  child.once('exit', (code) => stderr.push(`[${args[0]}] exited with ${code}`));
  children.push(child);
  return Object.assign(child, { lines });
}

const stderr: string[] = [];

/** Waits generously: the whole suite runs in parallel on small CI machines and each daemon compiles via tsx. */
async function until<T>(f: () => T | undefined, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out; daemon logs:\n${stderr.slice(-20).join('')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** GET over the admin port's HTTPS, verified with the CPNS CA. */
function httpsGet(url: string, caPem: string, token: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    get(url, { ca: caPem, headers: { authorization: `Bearer ${token}` } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    }).on('error', reject);
  });
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
    // the gateway takes its settings from a config file (the command line would win over it)
    const cfg = join(root, 'gateway.json');
    writeFileSync(cfg, JSON.stringify({ 'data-dir': G, server: info.url, ca, media: 'wifi' }));
    daemon('gateway', '--config', cfg, '--token', gwToken);
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
    expect(status.currentEpoch).toBe(1);
    for (const m of status.members) {
      // each member: its PN (GW), online, acked epoch, delivery method, lag
      expect(m.gwId).toBe(gw.identity);
      expect(m).toHaveProperty('online');
      expect(m).toHaveProperty('ackedEpoch');
      expect(m).toHaveProperty('method');
      expect(m).toHaveProperty('lag');
      expect(m).not.toHaveProperty('key');
    }
    // the listening PNE is online and acked epoch 1 (it already opened a message of that epoch)
    let listenerMember: { online: boolean; ackedEpoch: number | null; lag: number } | undefined;
    for (let i = 0; i < 20 && !listenerMember; i++) {
      const st = JSON.parse(await cpns('admin', 'sg', 'status', created.sgId, '--data-dir', S));
      listenerMember = st.members.find(
        (m: { online: boolean; ackedEpoch: number | null }) => m.online && m.ackedEpoch === 1,
      );
      if (!listenerMember) await new Promise((r) => setTimeout(r, 200));
    }
    expect(listenerMember?.lag).toBe(0);
    const statusTable = await cpns('admin', 'sg', 'status', created.sgId, '--table', '--data-dir', S);
    expect(statusTable).toMatch(/pneId\s+pn\s+online\s+ackedEpoch\s+method\s+lag/);
    expect(statusTable).toContain(gw.identity);
    const policy = JSON.parse(
      await cpns('admin', 'sg', 'policy', created.sgId, '--unicast-only', '--invite', '--data-dir', S),
    );
    expect(policy).toMatchObject({ joinPolicy: 'invite', deliveryPolicy: { broadcast: false } });
    await expect(cpns('admin', 'sg', 'policy', created.sgId, '--data-dir', S)).rejects.toThrow(
      /nothing to change/,
    );
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

    // the audit log over the API: who, what, when, why, per SG
    const audit = JSON.parse(await cpns('admin', 'audit', '--sg', created.sgId, '--all', '--data-dir', S));
    const actions = audit.entries.map(
      (e: { action: string; reason: string | null }) => `${e.action}:${e.reason}`,
    );
    expect(actions).toContain('key.create:create');
    expect(actions).toContain('member.remove:revoke');
    expect(actions).toContain('key.update:revoke');
    expect(audit.entries.every((e: { sgId: string }) => e.sgId === created.sgId)).toBe(true);

    // the admin port serves the REST API, metrics and console over HTTPS with the CPNS CA
    const token = readFileSync(join(S, 'admin.token'), 'utf8').trim();
    const caPem = readFileSync(ca, 'utf8');
    const metrics = await httpsGet(`${info.adminUrl}/metrics`, caPem, token);
    expect(metrics.status).toBe(200);
    expect(metrics.body).toMatch(/^cpns_sessions\{role="gw"\} 1$/m);
    expect(metrics.body).toMatch(/^cpns_relayed_messages_total [1-9]/m);
    expect(metrics.body).toMatch(/^cpns_key_updates_total\{reason="revoke"\} 1$/m);
    expect(metrics.body).toContain('process_resident_memory_bytes');
    expect((await httpsGet(`${info.adminUrl}/metrics`, caPem, 'wrong-token')).status).toBe(401);
    expect((await httpsGet(`${info.adminUrl}/console/`, caPem, '')).body).toContain('<html');

    // operator errors are typed
    await expect(
      cpns('admin', 'sg', 'rekey', '00000000-0000-4000-8000-000000000000', '--data-dir', S),
    ).rejects.toThrow(/NOT_FOUND/);

    server.kill('SIGTERM');
    expect(await exited(server)).toBe(0);
  }, 240_000);
});
