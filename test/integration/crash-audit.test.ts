/**
 * docs/store.md (audit in the key transaction): every committed Group Key epoch has exactly one audit row, even across kill -9.
 *
 * A real `cpns server` process gets a burst of parallel rekeys over the admin API and is killed with SIGKILL at a
 * random moment (some kills land in the rotation the restart after a crash does itself); it is restarted each time.
 * Afterwards the SQLite file is opened directly and, per Service Group, the key.create/key.update audit rows must
 * name the epochs 1..epoch_hwm, each exactly once: no committed epoch without its audit row, no audit row for an
 * epoch that was never committed.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { loadOrCreateMasterKey } from '../../src/core/crypto/masterkey.js';
import { openSqliteStore } from '../../src/store/sqlite/index.js';
import type { AuditEntry } from '../../src/store/store.js';

const bin = fileURLToPath(new URL('../../bin/cpns.mjs', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'cpns-crash-'));
const children: ChildProcess[] = [];
const logs: string[] = [];

afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

const KILLS = 5;
/** Many SGs: the rotation after a crash (one update per SG, back to back) is a long run of key commits. */
const SGS = 24;
const PARALLEL = 6;

interface Daemon {
  readonly child: ChildProcess;
  /** Resolves with the exit code / signal. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Number of 'group key updated' log lines seen so far. */
  keyLogs: number;
}

function startDaemon(): Daemon {
  // A stale server.json would point at the previous (dead) process.
  rmSync(join(dir, 'server.json'), { force: true });
  const child = spawn(
    process.execPath,
    [bin, 'server', '--data-dir', dir, '--port', '0', '--enroll-port', '0', '--admin-port', '0'],
    { env: { ...process.env, CPNS_LOG_LEVEL: 'info' }, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  children.push(child);
  const d: Daemon = {
    child,
    keyLogs: 0,
    exited: new Promise((r) => child.once('exit', (code, signal) => r({ code, signal }))),
  };
  child.stderr!.on('data', (b: Buffer) => {
    const s = b.toString();
    d.keyLogs += s.split('group key updated').length - 1;
    logs.push(s);
    if (logs.length > 50) logs.shift();
  });
  return d;
}

async function until<T>(f: () => T | undefined | false, what: string, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; server log:\n${logs.join('')}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface Endpoint {
  readonly url: string;
  readonly token: string;
  readonly ca: string;
  /** Keep-alive: no TLS handshake per rekey, so the server spends its time in key commits. */
  readonly agent: Agent;
}

async function ready(d: Daemon): Promise<Endpoint> {
  const info = await until(() => {
    if (d.child.exitCode !== null) throw new Error(`server exited early:\n${logs.join('')}`);
    try {
      return JSON.parse(readFileSync(join(dir, 'server.json'), 'utf8')) as { adminUrl: string };
    } catch {
      return undefined; // not written yet (or half written)
    }
  }, 'server.json');
  return {
    url: info.adminUrl,
    token: readFileSync(join(dir, 'admin.token'), 'utf8').trim(),
    ca: readFileSync(join(dir, 'ca.pem'), 'utf8'),
    agent: new Agent({ keepAlive: true, maxSockets: PARALLEL }),
  };
}

function call(
  ep: Endpoint,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: unknown }> {
  const u = new URL(`/api/v1${path}`, ep.url);
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = request(
      {
        hostname: u.hostname,
        port: u.port,
        path: u.pathname,
        method,
        ca: ep.ca,
        agent: ep.agent,
        headers: {
          authorization: `Bearer ${ep.token}`,
          ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : undefined });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const rand = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo));

/** Parallel rekeys until `stop()`; returns how many succeeded. Errors (the process died) end a worker. */
function burst(ep: Endpoint, sgIds: readonly string[]): { stop: () => Promise<number>; ok: () => number } {
  let running = true;
  let ok = 0;
  const worker = async () => {
    while (running) {
      try {
        const r = await call(ep, 'POST', `/service-groups/${sgIds[rand(0, sgIds.length)]}/rekey`);
        if (r.status === 200) ok++;
        else throw new Error(`rekey answered ${r.status}: ${JSON.stringify(r.json)}`);
      } catch (e) {
        if (running) await sleep(5);
        if ((e as Error).message.startsWith('rekey answered')) throw e;
      }
    }
  };
  const workers = Array.from({ length: PARALLEL }, worker);
  return {
    ok: () => ok,
    stop: async () => {
      running = false;
      await Promise.all(workers);
      return ok;
    },
  };
}

describe('crash during a burst of key updates (kill -9)', () => {
  it('every committed epoch of every SG has exactly one key.create/key.update audit row', async () => {
    const t0 = Date.now();
    let d = startDaemon();
    let ep = await ready(d);
    const sgIds: string[] = [];
    for (let i = 0; i < SGS; i++) {
      const r = await call(ep, 'POST', '/service-groups', { name: `crash-${i}` });
      expect(r.status).toBe(201);
      sgIds.push((r.json as { sgId: string }).sgId);
    }

    let rekeys = 0;
    for (let kill = 0; kill < KILLS; kill++) {
      if (kill % 2 === 1) {
        // Kill during the rotation the restart after a crash does itself (one key update per SG).
        const seen = d.keyLogs;
        await until(() => d.keyLogs > seen || d.child.exitCode !== null, 'restart rotation');
        await sleep(rand(0, 15));
      } else {
        ep = await ready(d);
        const b = burst(ep, sgIds);
        // Let some rekeys complete, then kill at a random moment of the burst.
        await until(() => b.ok() >= 3, 'first rekeys');
        await sleep(rand(50, 400));
        d.child.kill('SIGKILL');
        rekeys += await b.stop();
        ep.agent.destroy();
      }
      d.child.kill('SIGKILL');
      const how = await d.exited;
      expect(how.signal === 'SIGKILL' || how.code !== null).toBe(true);
      d = startDaemon();
    }
    // The last start after a crash rotates every SG once and comes up; then a graceful stop.
    ep = await ready(d);
    expect((await call(ep, 'GET', '/service-groups')).status).toBe(200);
    ep.agent.destroy();
    d.child.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
    expect(rekeys).toBeGreaterThan(KILLS);

    const store = await openSqliteStore({
      path: join(dir, 'cpns.db'),
      masterKey: loadOrCreateMasterKey({ dataDir: dir }).key,
    });
    try {
      const problems: string[] = [];
      for (const sgId of sgIds) {
        const g = await store.getGroup(sgId);
        expect(g).toBeDefined();
        const hwm = g!.epochHighWater;
        const audit: AuditEntry[] = [];
        for (let after = 0; ; ) {
          const page = await store.listAudit({ sgId, afterSeq: after, limit: 1000 });
          audit.push(...page.entries);
          if (page.nextAfterSeq === null) break;
          after = page.nextAfterSeq;
        }
        const keyRows = audit.filter((e) => e.action === 'key.create' || e.action === 'key.update');
        const epochs = keyRows.map((e) => e.epoch);
        const count = new Map<number, number>();
        for (const e of epochs) count.set(e ?? -1, (count.get(e ?? -1) ?? 0) + 1);
        for (let e = 1; e <= hwm; e++) {
          const n = count.get(e) ?? 0;
          if (n !== 1) problems.push(`${sgId} epoch ${e}: ${n} audit rows`);
        }
        for (const e of count.keys())
          if (e < 1 || e > hwm) problems.push(`${sgId}: audit row for uncommitted epoch ${e} (hwm ${hwm})`);
        // audit order = epoch order (consecutive, no gaps, no duplicates), epoch 1 is the group's creation
        if (epochs.some((e, i) => e !== i + 1)) problems.push(`${sgId}: audit epochs ${epochs.join(',')}`);
        if (keyRows[0]?.action !== 'key.create') problems.push(`${sgId}: first key row is not key.create`);
        if (keyRows.slice(1).some((e) => e.action !== 'key.update'))
          problems.push(`${sgId}: a later key row is not key.update`);
        // the stored (unpruned) keys are committed epochs
        for (const k of await store.listKeyEpochs(sgId)) expect(k.epoch).toBeLessThanOrEqual(hwm);
        // the final start after a crash rotated this SG, audited as a restart update
        expect(keyRows.some((e) => e.reason === 'restart')).toBe(true);
      }
      expect(problems).toEqual([]);
    } finally {
      await store.close();
    }
    // keep the whole test bounded
    expect(Date.now() - t0).toBeLessThan(60_000);
  }, 90_000);
});
