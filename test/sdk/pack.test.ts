/**
 * The SDK as a package (issue #12 §1): `npm pack` builds and packs the tarball, a fresh project installs it (the
 * package from the tarball only, offline), and the device maker's example (examples/device.mjs, the program of
 * docs/sdk.md) runs there with plain `node` against a real CPNS Server and PN GW started here: it enrolls with a
 * token from a file, joins a Service Group, exchanges messages with another PNE, survives a restart of its GW and
 * leaves.
 *
 * How it stays offline and fast:
 * - The package is packed from a copy of the sources (the files `npm pack` needs, node_modules linked for tsc), so
 *   `prepack` builds dist/ there, not in the working tree (a stale dist/ nobody asked for; concurrent runs).
 * - The fresh project installs with `npm ci --offline`: its lock file names the tarball (with its integrity) and
 *   the third-party packages exactly as the repository's lock file does, so npm takes them from its cache (filled
 *   by the repository's own `npm ci`) and needs no registry metadata, which `npm ci` never caches.
 * - `--ignore-scripts`: the package has no install script of its own; the third-party ones are better-sqlite3's
 *   native build (minutes, and for the server only) and cbor-extract's (cbor-x falls back to JavaScript). The
 *   device SDK loads neither.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Credentials, PnGateway } from '../../src/gateway/index.js';
import { PnGateway as Gateway } from '../../src/gateway/index.js';
import type { GroupMessageEvent, PneClient } from '../../src/pne/index.js';
import type { CpnsServer } from '../../src/server/index.js';
import { inbox, startGateway, startPne, startServer, tempDir, until } from '../integration/helpers.js';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as {
  version: string;
  files: string[];
  dependencies: Record<string, string>;
  overrides?: Record<string, string>;
  bin: Record<string, string>;
  engines: Record<string, string>;
  license: string;
};

/** The environment of the child processes: no loader or test runner settings of ours. */
function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  for (const k of Object.keys(env)) if (k === 'NODE_OPTIONS' || k.startsWith('VITEST')) delete env[k];
  return env;
}

function run(cmd: string, args: string[], cwd: string, timeoutMs = 180_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      { cwd, env: childEnv(), timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${stderr}`));
        else resolve(stdout);
      },
    );
  });
}

const npm = (args: string[], cwd: string) => run('npm', args, cwd);

interface PackResult {
  filename: string;
  integrity: string;
  size: number;
  unpackedSize: number;
  files: { path: string }[];
}

/** A copy of what `npm pack` reads (package files plus what the build needs), node_modules linked. */
function stageSources(stage: string): void {
  const entries = new Set([
    ...pkg.files,
    'package.json',
    'package-lock.json',
    'tsconfig.json',
    'tsconfig.build.json',
    'src',
    'README.md',
    'LICENSE',
  ]);
  for (const e of entries) {
    const from = join(repo, e);
    if (existsSync(from)) cpSync(from, join(stage, e), { recursive: true });
  }
  symlinkSync(join(repo, 'node_modules'), join(stage, 'node_modules'), 'dir');
}

/**
 * A fresh project depending on the tarball only, with a lock file: the tarball (its integrity from npm pack) and
 * the repository's locked production packages, at the same places (they are hoisted under node_modules/ in both).
 */
function freshProject(dir: string, tgz: string, integrity: string): void {
  const lock = JSON.parse(readFileSync(join(repo, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { dev?: boolean }>;
  };
  const manifest = {
    name: 'device-app',
    version: '1.0.0',
    private: true,
    type: 'module',
    dependencies: { cpns: `file:${tgz}` },
    // The versions the repository pins (the npm cache holds those); a real project may leave them out.
    ...(pkg.overrides ? { overrides: pkg.overrides } : {}),
  };
  const packages: Record<string, unknown> = {
    '': { name: manifest.name, version: manifest.version, dependencies: manifest.dependencies },
    'node_modules/cpns': {
      version: pkg.version,
      resolved: `file:${tgz}`,
      integrity,
      license: pkg.license,
      dependencies: pkg.dependencies,
      bin: pkg.bin,
      engines: pkg.engines,
    },
  };
  for (const [path, entry] of Object.entries(lock.packages))
    if (path !== '' && !entry.dev) packages[path] = entry;
  writeFileSync(join(dir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  writeFileSync(
    join(dir, 'package-lock.json'),
    `${JSON.stringify({ name: manifest.name, version: manifest.version, lockfileVersion: 3, requires: true, packages }, null, 2)}\n`,
  );
}

/** The example device as a child process: its JSON lines on standard output, its standard input. */
class Device {
  readonly events: Record<string, unknown>[] = [];
  readonly child: ChildProcess;
  stderr = '';
  exitCode: number | null | undefined;

  constructor(cwd: string, env: Record<string, string>) {
    this.child = spawn(process.execPath, ['device.mjs'], { cwd, env: childEnv(env), stdio: 'pipe' });
    let buf = '';
    this.child.stdout?.on('data', (d: Buffer) => {
      buf += d.toString('utf8');
      let i = buf.indexOf('\n');
      while (i >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        i = buf.indexOf('\n');
        try {
          this.events.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          this.events.push({ event: 'not-json', line });
        }
      }
    });
    this.child.stderr?.on('data', (d: Buffer) => {
      this.stderr += d.toString('utf8');
    });
    this.child.once('exit', (code) => {
      this.exitCode = code;
    });
  }

  count(event: string): number {
    return this.events.filter((e) => e.event === event).length;
  }

  /** Waits for the `n`-th event named `event` (1-based) matching `pred`. */
  async next(
    event: string,
    pred: (e: Record<string, unknown>) => boolean = () => true,
    n = 1,
    timeoutMs = 15_000,
  ): Promise<Record<string, unknown>> {
    const matching = () => this.events.filter((e) => e.event === event && pred(e));
    await until(
      () => matching().length >= n || this.exitCode !== undefined,
      timeoutMs,
      `device event ${event} #${n}`,
    ).catch((e: Error) => {
      throw new Error(`${e.message}; events so far: ${JSON.stringify(this.events)}; stderr: ${this.stderr}`);
    });
    const got = matching()[n - 1];
    if (!got)
      throw new Error(
        `device exited (${this.exitCode}) before ${event}: ${JSON.stringify(this.events)} ${this.stderr}`,
      );
    return got;
  }

  send(line: string): void {
    this.child.stdin?.write(`${line}\n`);
  }
}

/** Sends until `got` has a message with `text` (a message in flight while the GW comes back may be lost). */
async function deliver(send: () => void, got: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 15_000;
  while (!got()) {
    if (Date.now() > end) throw new Error(`timeout waiting for ${what}`);
    send();
    await until(got, 1000, what).catch(() => {});
  }
}

let tmp: ReturnType<typeof tempDir>;
let project: string;
let packed: PackResult;
const timings: Record<string, number> = {};
let server: CpnsServer | undefined;
let gw: PnGateway | undefined;
let peer: PneClient | undefined;
let device: Device | undefined;

async function timed<T>(what: string, f: () => Promise<T>): Promise<T> {
  const t0 = Date.now();
  try {
    return await f();
  } finally {
    timings[what] = Date.now() - t0;
  }
}

beforeAll(async () => {
  tmp = tempDir();
  const stage = join(tmp.dir, 'stage');
  const out = join(tmp.dir, 'out');
  project = join(tmp.dir, 'project');
  for (const d of [stage, out, project]) mkdirSync(d);
  stageSources(stage);
  const json = await timed('pack', () => npm(['pack', '--json', '--pack-destination', out], stage));
  // npm prints the build's output before the JSON (prepack): the JSON is the last bracketed block.
  packed = (JSON.parse(json.slice(json.lastIndexOf('\n[') + 1)) as PackResult[])[0]!;
  cpSync(join(out, packed.filename), join(project, packed.filename));
  freshProject(project, packed.filename, packed.integrity);
  await timed('install', () =>
    npm(['ci', '--offline', '--ignore-scripts', '--no-audit', '--no-fund'], project),
  );
}, 300_000);

afterAll(async () => {
  if (device && device.exitCode === undefined) device.child.kill('SIGKILL');
  await peer?.close();
  await gw?.close();
  await server?.close();
  tmp?.cleanup();
  if (packed)
    console.info(
      `cpns tarball ${packed.size} bytes (${packed.unpackedSize} unpacked, ${packed.files.length} files); ` +
        `pack ${timings.pack} ms, install ${timings.install} ms, device run ${timings.run ?? '-'} ms`,
    );
});

describe('the packed SDK', () => {
  it('ships the built JavaScript, its types, the CLI, the docs and the example, and no sources or tests', () => {
    const files = new Set(packed.files.map((f) => f.path));
    for (const f of [
      'package.json',
      'bin/cpns.mjs',
      'dist/cli/main.js',
      'dist/admin/console/index.html',
      'examples/device.mjs',
      'docs/sdk.md',
      'README.md',
      'LICENSE',
    ])
      expect(files, f).toContain(f);
    for (const entry of ['./pne', './gateway', './server', './core']) {
      const dir = entry === './server' ? 'embed' : entry.slice(2);
      expect(files).toContain(`dist/${dir}/index.js`);
      expect(files).toContain(`dist/${dir}/index.d.ts`);
    }
    expect([...files].filter((f) => /^(src|test|bench)\//.test(f) || f.endsWith('.ts.map'))).toEqual([]);
  });

  it('installs without tsx; its CLI runs from dist/ and every entry point loads, with plain node', async () => {
    expect(existsSync(join(project, 'node_modules/cpns/dist/pne/index.js'))).toBe(true);
    expect(existsSync(join(project, 'node_modules/tsx'))).toBe(false);
    const out = await run(process.execPath, [join(project, 'node_modules/.bin/cpns'), '--version'], project);
    expect(out).toBe(`cpns ${pkg.version}\n`);
    // Every entry point resolves and loads at run time (cpns/server without better-sqlite3's native build: it
    // loads the addon on the first database it opens).
    const entries = ['pne', 'gateway', 'server', 'core', 'transport', 'store'].map((e) => `cpns/${e}`);
    const loaded = await run(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `for (const e of ${JSON.stringify(entries)}) console.log(e, Object.keys(await import(e)).length > 0);`,
      ],
      project,
    );
    expect(loaded.trim().split('\n')).toEqual(entries.map((e) => `${e} true`));
  });

  it('type-checks a program against cpns/pne, cpns/gateway and cpns/server', async () => {
    writeFileSync(
      join(project, 'check.ts'),
      [
        "import { PneClient, type PneConnectOptions, type GroupMessageEvent } from 'cpns/pne';",
        "import { PnGateway, type GatewayOptions } from 'cpns/gateway';",
        "import { startServer, type CpnsServer, type SqliteServerOptions } from 'cpns/server';",
        'const o: PneConnectOptions = { gwUrls: [], credentials: { identity: "", certPem: "", keyPem: "", caPem: "" } };',
        'const on = (p: PneClient) => p.on("message", (m: GroupMessageEvent) => m.plaintext.length);',
        'const g: Partial<GatewayOptions> = { port: 1 };',
        'const s: SqliteServerOptions = { dataDir: "x" };',
        'export const all = [o, on, g, s, PneClient.enroll, PnGateway.start, startServer] as const;',
        'export type S = CpnsServer;',
        '',
      ].join('\n'),
    );
    const tsc = join(repo, 'node_modules/typescript/bin/tsc');
    await run(
      process.execPath,
      [
        tsc,
        '--noEmit',
        '--strict',
        '--skipLibCheck',
        '--module',
        'nodenext',
        '--moduleResolution',
        'nodenext',
        '--target',
        'es2022',
        '--types',
        'node',
        '--typeRoots',
        join(repo, 'node_modules/@types'),
        'check.ts',
      ],
      project,
    );
  });

  it('runs the example device with plain node: enroll, join, exchange, survive a GW restart, leave', async () => {
    const t0 = Date.now();
    const dirs = join(tmp.dir, 'run');
    mkdirSync(dirs);
    server = await startServer(join(dirs, 'server'));
    const s = server;
    const gwCreds: Credentials = await Gateway.enroll({
      enrollUrl: s.enrollUrl,
      caPem: s.caPem,
      token: await s.admin.createToken('gw'),
    });
    gw = await startGateway(s, gwCreds);
    const port = Number(new URL(gw.url).port);
    peer = await startPne(s, gw);
    const p = peer;
    const { sgId } = await s.admin.createGroup({ name: 'sdk', joinPolicy: 'open', members: [p.identity] });
    await p.waitForKey(sgId);
    const got: GroupMessageEvent[] = inbox(p);

    // The device's first start: a one-time token in a file (0600), the CA, a GW's URLs.
    const tokenFile = join(dirs, 'token');
    writeFileSync(tokenFile, `${await s.admin.createToken('pne')}\n`, { mode: 0o600 });
    const caFile = join(dirs, 'ca.pem');
    writeFileSync(caFile, s.caPem);
    const dataDir = join(project, '.cpns/device');
    cpSync(join(project, 'node_modules/cpns/examples/device.mjs'), join(project, 'device.mjs'));
    const d = new Device(project, {
      CPNS_GW_URL: gw.url,
      CPNS_SG: sgId,
      CPNS_DATA_DIR: join(project, '.cpns'),
      CPNS_ENROLL_URL: gw.enrollUrl,
      CPNS_CA: caFile,
      CPNS_TOKEN_FILE: tokenFile,
    });
    device = d;

    const enrolled = await d.next('enrolled');
    const identity = enrolled.identity as string;
    expect(identity).toMatch(/^urn:cpns:pne:/);
    expect(statSync(join(dataDir, 'credentials.json')).mode & 0o777).toBe(0o600);
    expect(statSync(dataDir).mode & 0o777).toBe(0o700);
    expect(await d.next('attached')).toMatchObject({ identity, gwUrl: gw.url });
    const joined = await d.next('joined');
    expect(joined).toMatchObject({ sgId });
    const epoch = joined.epoch as number;
    expect(epoch).toBeGreaterThanOrEqual(2); // the join updated the key (update on join)
    await until(() => p.currentEpoch(sgId) === epoch, 10_000, 'the peer on the epoch of the join');

    // Device → peer, peer → device.
    d.send('hello from the device');
    await until(() => got.some((m) => m.plaintext.toString() === 'hello from the device'), 10_000, 'at peer');
    expect(got.find((m) => m.plaintext.toString() === 'hello from the device')).toMatchObject({
      sgId,
      sender: identity,
      epoch,
    });
    p.send(sgId, 'hello device');
    expect(await d.next('message', (e) => e.text === 'hello device')).toMatchObject({
      sgId,
      sender: p.identity,
      epoch,
    });

    // The GW restarts on the same port: the device reconnects on its own and the SG works again.
    await gw.close();
    await d.next('disconnected');
    gw = await startGateway(s, gwCreds, { port });
    await d.next('attached', () => true, 2, 30_000);
    expect(d.count('reconnecting')).toBeGreaterThanOrEqual(1);
    await until(() => p.connected, 15_000, 'the peer back');
    await deliver(
      () => d.send('after the restart'),
      () => got.some((m) => m.plaintext.toString() === 'after the restart'),
      'device → peer after the GW restart',
    );
    await deliver(
      () => p.send(sgId, 'welcome back'),
      () => d.events.some((e) => e.event === 'message' && e.text === 'welcome back'),
      'peer → device after the GW restart',
    );

    // Leave: the device is no longer a member, and it exits 0.
    d.send('/leave');
    expect(await d.next('closed')).toMatchObject({ left: true });
    await until(() => d.exitCode !== undefined, 10_000, 'device exit');
    expect(d.exitCode).toBe(0);
    const members = (await s.admin.groupStatus(sgId)).members.map((m) => m.pneId);
    const isMember = (id: string) => members.some((m) => m === id || id.endsWith(m));
    expect([isMember(p.identity), isMember(identity)]).toEqual([true, false]);
    expect(d.events.filter((e) => e.event === 'error' || e.event === 'not-json')).toEqual([]);
    timings.run = Date.now() - t0;
  }, 120_000);
});
