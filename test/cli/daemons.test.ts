import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { get as getHttp } from 'node:http';
import { get } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { urlListOption, withConfig } from '../../src/cli/daemons.js';
import { UsageError } from '../../src/cli/usage.js';
import { freePort } from '../free-port.js';

const bin = fileURLToPath(new URL('../../bin/cpns.mjs', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'cpns-cli-'));
const children: ChildProcess[] = [];
const env = { ...process.env, CPNS_LOG_LEVEL: 'warn' };

afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  rmSync(root, { recursive: true, force: true });
});

interface RunOptions {
  /** Extra environment variables (e.g. CPNS_TOKEN). */
  env?: Record<string, string>;
  /** Written to the command's standard input (e.g. for --token-file -). */
  input?: string;
}

/** One cpns command: its exit code, stdout and stderr. */
function run(
  args: string[],
  o: RunOptions = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], {
      env: { ...env, ...o.env },
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: 30_000,
    });
    let stdout = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout: stdout.trim(), stderr: err }));
    child.stdin.end(o.input ?? '');
  });
}

/** A cpns command that must succeed: its stdout (rejects with the exit code and stderr otherwise). */
async function cpnsWith(o: RunOptions, ...args: string[]): Promise<string> {
  const r = await run(args, o);
  if (r.code !== 0) throw new Error(`cpns ${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}
const cpns = (...args: string[]) => cpnsWith({}, ...args);

type Daemon = ChildProcess & { lines: string[]; logs: string[] };

function daemon(args: string[], extraEnv: Record<string, string> = {}): Daemon {
  const child = spawn(process.execPath, [bin, ...args], {
    env: { ...env, ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const logs: string[] = [];
  child.stdout!.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)));
  // keep the daemons' logs (stderr): a failing wait reports them
  child.stderr!.on('data', (d: Buffer) => {
    logs.push(d.toString());
    stderr.push(`[${args[0]}] ${d.toString()}`);
    if (stderr.length > 200) stderr.shift();
  });
  child.once('exit', (code) => stderr.push(`[${args[0]}] exited with ${code}`));
  children.push(child);
  return Object.assign(child, { lines, logs });
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

/** GET over plain HTTP (the GW's metrics endpoint): the body of a 200. */
function httpGetText(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    getHttp(url, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        res.statusCode === 200
          ? resolve(Buffer.concat(chunks).toString())
          : reject(new Error(`${url}: HTTP ${res.statusCode}`)),
      );
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
    writeFileSync(
      cfg,
      // server: a list (a dead node first): the GW fails over to the live one, from either start index
      JSON.stringify({
        'data-dir': G,
        server: [`wss://127.0.0.1:${await freePort()}/cpns`, info.url],
        'enroll-url': info.enrollUrl,
        ca,
        media: 'wifi',
        // ephemeral ports (the defaults, 7450/7451, may be in use on a test machine)
        port: 0,
        'enroll-port': 0,
        // its Prometheus endpoint (off by default), on an ephemeral loopback port: gateway.json names it
        'metrics-port': 0,
      }),
    );
    // secrets never on the command line: --token is refused with a usage error (exit 2), before any enrollment
    const onArgv = await run(['gateway', '--config', cfg, '--token', gwToken]);
    expect(onArgv.code).toBe(2);
    expect(onArgv.stderr).toMatch(/--token is not accepted.*--token-file/);
    expect(existsSync(G)).toBe(false);
    // the enrollment token from a file
    const tokenFile = join(root, 'gw.token');
    writeFileSync(tokenFile, `${gwToken}\n`, { mode: 0o600 });
    const gateway = daemon(['gateway', '--config', cfg, '--token-file', tokenFile]);
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
      '--enroll-url',
      gw.enrollUrl,
      '--ca',
      ca,
    ];
    const t1 = await cpns('admin', 'token', 'create', '--role', 'pne', '--data-dir', S);
    // the enrollment token from the environment
    const created = JSON.parse(
      await cpnsWith(
        { env: { CPNS_TOKEN: t1 } },
        ...pne('p1', 'group', 'create', '--name', 'cli-group', '--open'),
      ),
    );
    expect(created.epoch).toBe(1);
    const t2 = await cpns('admin', 'token', 'create', '--role', 'pne', '--data-dir', S);
    // ... or from standard input
    await cpnsWith(
      { input: `${t2}\n` },
      ...pne('p2', 'group', 'join', '--sg', created.sgId, '--token-file', '-'),
    );
    // a used token is refused
    await expect(cpnsWith({ env: { CPNS_TOKEN: t2 } }, ...pne('p3', 'listen'))).rejects.toThrow(
      /ENROLL_REFUSED/,
    );
    const pneOnArgv = await run(pne('p4', 'listen', '--token', t2));
    expect(pneOnArgv.code).toBe(2);
    expect(pneOnArgv.stderr).toContain('--token-file');

    const listener = daemon(pne('p2', 'listen'));
    await until(() => listener.lines.find((l) => l.includes('"ready"')));
    const sent = JSON.parse(
      await cpns(...pne('p1', 'send', '--sg', created.sgId, '--data', 'hello from p1')),
    );
    // p2's join updated the Group Key (update on join, the default): epoch 2.
    expect(sent.epoch).toBe(2);
    const msg = await until(() =>
      listener.lines.map((l) => JSON.parse(l)).find((e) => e.event === 'message'),
    );
    expect(msg.text).toBe('hello from p1');
    expect(msg.sgId).toBe(created.sgId);

    const status = JSON.parse(await cpns('admin', 'sg', 'status', created.sgId, '--data-dir', S));
    expect(status.members.length).toBe(2);
    expect(status.currentEpoch).toBe(2);
    for (const m of status.members) {
      // each member: its PN (GW), online, acked epoch, delivery method, lag
      expect(m.gwId).toBe(gw.identity);
      expect(m).toHaveProperty('online');
      expect(m).toHaveProperty('ackedEpoch');
      expect(m).toHaveProperty('method');
      expect(m).toHaveProperty('lag');
      expect(m).not.toHaveProperty('key');
    }
    // the listening PNE is online and acked epoch 2 (it already opened a message of that epoch)
    let listenerMember: { online: boolean; ackedEpoch: number | null; lag: number } | undefined;
    for (let i = 0; i < 20 && !listenerMember; i++) {
      const st = JSON.parse(await cpns('admin', 'sg', 'status', created.sgId, '--data-dir', S));
      listenerMember = st.members.find(
        (m: { online: boolean; ackedEpoch: number | null }) => m.online && m.ackedEpoch === 2,
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

    // revoke the listening PNE: its session is closed at once, `pne listen` exits 1 saying why; the group key is
    // updated for the rest
    const p2 = JSON.parse(readFileSync(join(root, 'p2', 'credentials.json'), 'utf8')).identity as string;
    await cpns('admin', 'revoke', p2, '--data-dir', S);
    expect(await exited(listener)).toBe(1);
    expect(listener.logs.join('')).toContain(`cpns: REVOKED: identity ${p2} was revoked by the operator`);
    const groups = JSON.parse(await cpns('admin', 'sg', 'list', '--data-dir', S));
    const g = groups.find((x: { sgId: string }) => x.sgId === created.sgId);
    expect(g.members).not.toContain(p2);
    expect(g.currentEpoch).toBe(3); // create 1, join 2, revoke 3
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
    // the GW's own metrics (--metrics-port): plain HTTP on loopback, its session up and what it dropped
    expect(gw.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    const gwMetrics = await httpGetText(gw.metricsUrl);
    expect(gwMetrics).toMatch(/^cpns_gw_sessions\{kind="server"\} 1$/m);
    expect(gwMetrics).toMatch(/^cpns_gw_drops_total\{code="NOT_MEMBER"\} 0$/m);
    expect(gwMetrics).toMatch(/^cpns_build_info\{version="[^"]+",node="v[0-9.]+"\} 1$/m);
    expect((await httpsGet(`${info.adminUrl}/console/`, caPem, '')).body).toContain('<html');

    // operator errors are typed
    await expect(
      cpns('admin', 'sg', 'rekey', '00000000-0000-4000-8000-000000000000', '--data-dir', S),
    ).rejects.toThrow(/NOT_FOUND/);

    // the admin token from a file instead of <dataDir>/admin.token; a wrong one is refused
    const adminTokenFile = join(root, 'admin.token');
    writeFileSync(adminTokenFile, token, { mode: 0o600 });
    expect(
      JSON.parse(await cpns('admin', 'sg', 'list', '--token-file', adminTokenFile, '--data-dir', S)),
    ).toEqual(groups.map((x: { sgId: string }) => expect.objectContaining({ sgId: x.sgId })));
    await expect(
      cpnsWith({ env: { CPNS_ADMIN_TOKEN: 'wrong-token' } }, 'admin', 'sg', 'list', '--data-dir', S),
    ).rejects.toThrow(/UNAUTHORIZED/);
    expect((await run(['admin', 'sg', 'list', '--token', token, '--data-dir', S])).code).toBe(2);

    // revoke the running gateway: the server closes its session (REVOKED), the daemon exits 1 saying why
    await cpns('admin', 'revoke', gw.identity, '--data-dir', S);
    expect(await exited(gateway)).toBe(1);
    expect(gateway.logs.join('')).toContain(
      `cpns: REVOKED: identity ${gw.identity} was revoked by the operator`,
    );

    server.kill('SIGTERM');
    expect(await exited(server)).toBe(0);
    // a graceful exit removes the data directory lock
    expect(existsSync(join(S, 'cpns.lock'))).toBe(false);
  }, 240_000);
});

/** A TCP port free right now (the gateway restarts on the same one). */

/** undefined while the file is absent or still being written (a lock file is written in place). */
const readJson = (path: string) => {
  try {
    return existsSync(path) ? JSON.parse(readFileSync(path, 'utf8')) : undefined;
  } catch {
    return undefined;
  }
};
const lockPid = (dir: string): number | undefined => readJson(join(dir, 'cpns.lock'))?.pid;
/** Content and mtime of each file of a data directory (what a refused second daemon must leave alone). */
const snapshot = (dir: string, names: string[]) =>
  names.map((n) => `${n}:${statSync(join(dir, n)).mtimeMs}:${readFileSync(join(dir, n), 'base64')}`);

describe('one process per data directory; daemons that outlive their peers', () => {
  const S = join(root, 'lock-server');
  const G = join(root, 'lock-gw');
  const ca = join(S, 'ca.pem');
  let server: Daemon;
  let gateway: Daemon;
  let listener: Daemon;
  let gwPort = 0;
  let serverUrl = '';
  let gwUrl = '';
  let serverEnrollUrl = '';
  let gwEnrollUrl = '';
  let sgId = '';
  const pne = (dir: string, ...a: string[]) => [
    'pne',
    ...a,
    '--data-dir',
    join(root, dir),
    '--gw',
    gwUrl,
    '--enroll-url',
    gwEnrollUrl,
    '--ca',
    ca,
  ];
  const epochs = async () =>
    (
      JSON.parse(await cpns('admin', 'sg', 'list', '--data-dir', S)) as {
        sgId: string;
        currentEpoch: number;
      }[]
    ).map((g) => `${g.sgId}:${g.currentEpoch}`);
  const gatewayArgs = () => [
    'gateway',
    '--data-dir',
    G,
    '--server',
    serverUrl,
    '--enroll-url',
    serverEnrollUrl,
    '--ca',
    ca,
    '--port',
    String(gwPort),
    '--enroll-port',
    '0',
  ];

  beforeAll(async () => {
    server = daemon(['server', '--data-dir', S, '--port', '0', '--enroll-port', '0', '--admin-port', '0']);
    ({ url: serverUrl, enrollUrl: serverEnrollUrl } = await until(() => readJson(join(S, 'server.json'))));
    gwPort = await freePort();
    const token = (role: string) => cpns('admin', 'token', 'create', '--role', role, '--data-dir', S);
    const [gwToken, ta, tb, created] = await Promise.all([
      token('gw'),
      token('pne'),
      token('pne'),
      cpns('admin', 'sg', 'create', '--name', 'lock', '--open', '--data-dir', S),
    ]);
    sgId = JSON.parse(created).sgId;
    gateway = daemon(gatewayArgs(), { CPNS_TOKEN: gwToken });
    ({ url: gwUrl, enrollUrl: gwEnrollUrl } = await until(() => readJson(join(G, 'gateway.json'))));
    await Promise.all([
      cpnsWith({ env: { CPNS_TOKEN: ta } }, ...pne('pa', 'group', 'join', '--sg', sgId)),
      cpnsWith({ env: { CPNS_TOKEN: tb } }, ...pne('pb', 'group', 'join', '--sg', sgId)),
    ]);
    listener = daemon(pne('pb', 'listen'), { CPNS_LOG_LEVEL: 'info' });
    await until(() => listener.lines.find((l) => l.includes('"ready"')));
  }, 60_000);

  it('a second server, gateway or pne on a data directory in use refuses to start, touching nothing', async () => {
    const before = await epochs();
    const files = ['server.json', 'ca.pem', 'admin.token', 'master.key', 'cpns.lock'];
    const serverFiles = snapshot(S, files);

    const [second, secondGw, secondPne] = await Promise.all([
      run(['server', '--data-dir', S, '--port', '0', '--enroll-port', '0', '--admin-port', '0']),
      run(gatewayArgs()),
      run(pne('pb', 'listen')),
    ]);
    expect(second.code).toBe(1);
    expect(second.stderr).toContain(`data directory ${S} is in use by cpns server (PID ${server.pid}`);
    expect(secondGw.code).toBe(1);
    expect(secondGw.stderr).toContain(`data directory ${G} is in use by cpns gateway (PID ${gateway.pid}`);
    expect(secondPne.code).toBe(1);
    expect(secondPne.stderr).toContain(`is in use by cpns pne listen (PID ${listener.pid}`);
    // the first server's state is untouched: no Service Group rekeyed, no file rewritten
    expect(snapshot(S, files)).toEqual(serverFiles);
    expect(await epochs()).toEqual(before);
    expect([server, gateway, listener].map((d) => d.exitCode)).toEqual([null, null, null]);
  }, 20_000);

  it('pne listen outlives its GW (reconnecting with backoff), re-attaches to the restarted GW', async () => {
    gateway.kill('SIGKILL');
    await exited(gateway);
    // the listener stays up and says what it is doing
    await until(
      () => (listener.logs.join('').match(/GW unreachable, reconnecting in \d+ ms/g)?.length ?? 0) >= 2,
    );
    expect(listener.logs.join('')).toMatch(/"attempt":2/);
    expect(listener.exitCode).toBe(null);
    // the killed gateway's lock is stale: a new gateway starts on its data directory (same port)
    expect(lockPid(G)).toBe(gateway.pid);
    gateway = daemon(gatewayArgs());
    await until(() => lockPid(G) === gateway.pid);
    await until(() => listener.logs.join('').includes('re-attached to the GW'));
    await cpns(...pne('pa', 'send', '--sg', sgId, '--data', 'after the restart'));
    const msg = await until(() =>
      listener.lines.map((l) => JSON.parse(l)).find((e) => e.event === 'message'),
    );
    expect(msg.text).toBe('after the restart');
  }, 20_000);

  it('a killed server leaves a stale lock: the next server starts on its data directory', async () => {
    const adminUrl = readJson(join(S, 'server.json')).adminUrl;
    server.kill('SIGKILL');
    await exited(server);
    const next = daemon([
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
    await until(() => lockPid(S) === next.pid && readJson(join(S, 'server.json'))?.adminUrl !== adminUrl);
    expect((await epochs()).length).toBe(1);
    for (const d of [next, gateway, listener]) d.kill('SIGTERM');
    expect(await Promise.all([next, gateway, listener].map(exited))).toEqual([0, 0, 0]);
    for (const d of [S, G, join(root, 'pb')]) expect(existsSync(join(d, 'cpns.lock'))).toBe(false);
  }, 20_000);
});

describe('URL lists of --server / --gw', () => {
  it('comma-separated, trimmed, deduplicated; each a wss:// URL', () => {
    expect(urlListOption('wss://a:1/cpns, wss://b:2/cpns,,wss://a:1/cpns', '--server')).toEqual([
      'wss://a:1/cpns',
      'wss://b:2/cpns',
    ]);
    expect(() => urlListOption('wss://a:1/cpns,https://b', '--server')).toThrow(UsageError);
    expect(() => urlListOption('not a url', '--gw')).toThrow(UsageError);
    expect(() => urlListOption(' , ', '--gw')).toThrow(UsageError);
    const many = Array.from({ length: 33 }, (_, i) => `wss://h${i}/cpns`).join(',');
    expect(() => urlListOption(many, '--server')).toThrow(UsageError);
  });

  it('--config takes a list as a JSON array of strings (the same as its comma-separated form)', () => {
    const cfg = join(root, 'list.json');
    writeFileSync(cfg, JSON.stringify({ server: ['wss://a/cpns', 'wss://b/cpns'] }));
    expect(withConfig(['--config', cfg])).toEqual(['--server', 'wss://a/cpns,wss://b/cpns', '--config', cfg]);
    writeFileSync(cfg, JSON.stringify({ server: [1, 2] }));
    expect(() => withConfig(['--config', cfg])).toThrow(UsageError);
    writeFileSync(cfg, JSON.stringify({ server: ['a,b'] }));
    expect(() => withConfig(['--config', cfg])).toThrow(UsageError);
  });
});
