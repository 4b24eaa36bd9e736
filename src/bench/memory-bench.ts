/**
 * `cpns bench memory` (docs/benchmarks.md "Memory per connection", issue #11 §4): idle memory per GW session and
 * per PNE, at the CPNS Server and at the PN GW. The server and one GW each run in their own process
 * (memory-role.ts) and report process.memoryUsage() after a full GC; the benchmark opens `gateways` real GW
 * sessions to the server, then `pnes` simulated PNEs (real TLS session to the GW plus the end-to-end tunnel to
 * the server, as a real PNE keeps) behind the GW process, and divides each process's growth by the count.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { type Credentials, PnGateway } from '../gateway/index.js';
import { PneClient } from '../pne/index.js';
import { pool } from './measure.js';
import type { MemorySample } from './memory-role.js';
import { SimPne } from './sim-pne.js';

class Role {
  readonly child: ChildProcess;
  readonly ready: Promise<Record<string, string>>;
  #id = 0;
  readonly #pending = new Map<number, (m: Record<string, unknown>) => void>();

  constructor(role: 'server' | 'gw') {
    const self = fileURLToPath(import.meta.url);
    const ts = self.endsWith('.ts');
    const file = self.replace(/memory-bench\.(ts|js)$/, `memory-role.${ts ? 'ts' : 'js'}`);
    this.child = fork(file, [role], { execArgv: ts ? ['--import', 'tsx'] : [], stdio: 'inherit' });
    this.ready = new Promise((resolve, reject) => {
      this.child.once('exit', (code) => reject(new Error(`memory ${role} process exited with ${code}`)));
      this.child.on('message', (m: Record<string, unknown>) => {
        if (m.t === 'ready') resolve(m as Record<string, string>);
        else if (m.t === 'reply') this.#pending.get(m.id as number)?.(m);
      });
    });
  }

  call(m: Record<string, unknown>): Promise<Record<string, unknown>> {
    const id = ++this.#id;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, (r) => {
        this.#pending.delete(id);
        if (typeof r.error === 'string') reject(new Error(`memory role: ${r.error}`));
        else resolve(r);
      });
      this.child.send({ ...m, id });
    });
  }

  async measure(): Promise<MemorySample> {
    // settle: let timers and TLS buffers of the last connections go idle
    await new Promise((r) => setTimeout(r, 1500));
    return (await this.call({ t: 'measure' })).sample as MemorySample;
  }
}

export interface MemoryResult {
  readonly gateways: number;
  readonly pnes: number;
  /** Bytes per connection (RSS growth and JS heap + external growth), per side. */
  readonly perGwSessionAtServer: { rss: number; js: number };
  readonly perPneAtServer: { rss: number; js: number };
  readonly perPneAtGw: { rss: number; js: number };
}

const per = (a: MemorySample, b: MemorySample, n: number) => ({
  rss: (b.rss - a.rss) / n,
  js: (b.heapUsed + b.external - a.heapUsed - a.external) / n,
});

export async function benchMemory(o: { gateways: number; pnes: number; log: (l: string) => void }) {
  const logger = pino({ level: 'silent' });
  const server = new Role('server');
  const gwProc = new Role('gw');
  const gws: PnGateway[] = [];
  const sims: SimPne[] = [];
  try {
    const { url, enrollUrl, caPem } = await server.ready;
    await gwProc.ready;
    const token = async (role: 'gw' | 'pne') => (await server.call({ t: 'token', role })).token as string;
    const s0 = await server.measure();
    o.log(`  ${o.gateways} GW sessions to the server...`);
    await pool(
      Array.from({ length: o.gateways }, (_, i) => i),
      8,
      async (i) => {
        const credentials = await PnGateway.enroll({
          enrollUrl: enrollUrl!,
          caPem: caPem!,
          token: await token('gw'),
        });
        gws[i] = await PnGateway.start({ serverUrl: url!, credentials, logger, enrollPort: 0 } as Parameters<
          typeof PnGateway.start
        >[0]);
      },
    );
    const s1 = await server.measure();
    // the GW under measure: its own process
    const credentials: Credentials = await PnGateway.enroll({
      enrollUrl: enrollUrl!,
      caPem: caPem!,
      token: await token('gw'),
    });
    const gw = (await gwProc.call({ t: 'gw', serverUrl: url, credentials })) as {
      url: string;
      enrollUrl: string;
    };
    const s2 = await server.measure();
    const g0 = await gwProc.measure();
    o.log(`  ${o.pnes} PNEs (session to the GW + tunnel to the server) behind one GW...`);
    const creds: Credentials[] = [];
    await pool(
      Array.from({ length: o.pnes }, (_, i) => i),
      16,
      async (i) => {
        creds[i] = await PneClient.enroll({
          enrollUrl: gw.enrollUrl,
          caPem: caPem!,
          token: await token('pne'),
        });
      },
    );
    // 8 at a time: on a loaded 2-core machine 32 concurrent handshakes (session plus tunnel) outran the 10 s
    // tunnel deadline; what is measured is idle memory, not setup speed.
    await pool(creds, 8, async (c, i) => {
      sims[i] = await SimPne.connect(gw.url, c);
    });
    const s3 = await server.measure();
    const g1 = await gwProc.measure();
    return {
      gateways: o.gateways,
      pnes: o.pnes,
      perGwSessionAtServer: per(s0, s1, o.gateways),
      perPneAtServer: per(s2, s3, o.pnes),
      perPneAtGw: per(g0, g1, o.pnes),
    } satisfies MemoryResult;
  } finally {
    await Promise.all(sims.map((s) => s?.close()));
    await pool(gws, 16, (g) => g.close());
    for (const r of [gwProc, server]) await r.call({ t: 'close' }).catch(() => r.child.kill('SIGKILL'));
  }
}

export async function runMemoryBench(o: { gateways: number; pnes: number; outDir?: string }): Promise<void> {
  const log = (l: string) => process.stdout.write(`${l}\n`);
  log(`Idle memory per connection: ${o.gateways} GW sessions, ${o.pnes} PNEs (each side in its own process)`);
  const r = await benchMemory({ ...o, log });
  const kib = (x: number) => (x / 1024).toFixed(1).padStart(8);
  log('connection                     RSS KiB   JS heap+external KiB');
  log(`GW session, at the server  ${kib(r.perGwSessionAtServer.rss)}   ${kib(r.perGwSessionAtServer.js)}`);
  log(`PNE, at the server         ${kib(r.perPneAtServer.rss)}   ${kib(r.perPneAtServer.js)}`);
  log(`PNE, at its GW             ${kib(r.perPneAtGw.rss)}   ${kib(r.perPneAtGw.js)}`);
  const outDir = o.outDir ?? join(process.cwd(), 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  const date = new Date().toISOString();
  const file = join(outDir, `memory-${o.gateways}gw-${o.pnes}pne-${date.slice(0, 10)}.json`);
  writeFileSync(
    file,
    `${JSON.stringify({ date, node: process.version, cpu: cpus()[0]?.model, ...r }, null, 2)}\n`,
  );
  log(`written ${file}`);
}
