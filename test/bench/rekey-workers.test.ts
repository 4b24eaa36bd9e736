import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { median } from '../../src/bench/measure.js';
import { benchRekeyWorkers } from '../../src/bench/rekey-workers.js';

/** The bench's worker processes that are children of this process (ps, so nothing is taken on trust). */
const workerChildren = (): string[] => {
  try {
    return execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(process.pid)], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => l.includes('rekey-worker'));
  } catch {
    return []; // ps exits 1 when there is no child at all
  }
};

describe('bench rekey in worker processes (issue #11 §2)', () => {
  it('20 members over 4 GWs in 2 workers: every member acks, figures are sane, no worker is left', async () => {
    const lines: string[] = [];
    const profDir = mkdtempSync(join(tmpdir(), 'cpns-prof-'));
    const r = await benchRekeyWorkers({
      sizes: [10, 20],
      perGw: 5,
      rounds: 2,
      policies: ['unicast', 'broadcast'],
      workers: 2,
      gwWorkers: true,
      sgs: 4,
      sgRounds: 2,
      cpuProfDir: profDir,
      log: (l) => lines.push(l),
    });
    expect(r.points.map((p) => [p.policy, p.members, p.gateways])).toEqual([
      ['unicast', 10, 2],
      ['unicast', 20, 4],
      ['broadcast', 10, 2],
      ['broadcast', 20, 4],
    ]);
    for (const p of r.points) {
      expect(p.allAckedMs).toHaveLength(2);
      expect(p.trackedMs).toHaveLength(2);
      for (const x of [...p.allAckedMs, ...p.trackedMs]) expect(x).toBeGreaterThan(0);
      // every member's ack is after the update call and no later than the last one
      expect(p.memberAckMs.p50).toBeGreaterThan(0);
      expect(p.memberAckMs.p50).toBeLessThanOrEqual(p.memberAckMs.p99);
      expect(p.memberAckMs.max).toBeCloseTo(Math.max(...p.allAckedMs), 6);
      // the server cannot have tracked an ack before the PNE sent it (clocks comparable across processes)
      expect(median(p.trackedMs)).toBeGreaterThanOrEqual(median(p.allAckedMs) - 5);
      // the server's key.delivered event came for every update, after the last ack and before its confirmation
      expect(p.deliveredEventMs).toHaveLength(2);
      p.deliveredEventMs.forEach((x, i) => {
        expect(x).toBeGreaterThanOrEqual(p.allAckedMs[i]! - 5);
        expect(x).toBeLessThanOrEqual(p.trackedMs[i]! + 1);
      });
      expect(p.pnBytesPerUpdate).toBeGreaterThan(0);
      expect(p.parentCpuMsPerUpdate).toBeGreaterThan(0);
      expect(p.workersCpuMsPerUpdate).toBeGreaterThan(0);
    }
    const [u20, b20] = [r.points[1]!, r.points[3]!];
    // broadcast: one datagram per GW instead of one frame per member
    expect(b20.pnBytesPerUpdate).toBeLessThan(u20.pnBytesPerUpdate);
    expect(r.exponents.unicast?.allAcked).toBeTypeOf('number');
    expect(r.updates?.updates).toBe(8);
    expect(r.updates?.updatesPerSec).toBeGreaterThan(0);
    expect(workerChildren()).toEqual([]);

    // --cpu-prof: one profile of this process and one per worker for each policy and size, of the measured
    // updates only (a setup-only function such as the GW start is not in a worker's profile)
    const files = readdirSync(profDir).sort();
    const names = (p: string) => ['server', 'worker0', 'worker1'].map((w) => `${p}-${w}.cpuprofile`);
    expect(files).toEqual(
      [
        ...names('broadcast-10'),
        ...names('broadcast-20'),
        ...names('unicast-10'),
        ...names('unicast-20'),
      ].sort(),
    );
    for (const f of files) {
      const prof = JSON.parse(readFileSync(join(profDir, f), 'utf8')) as {
        nodes: { callFrame: { functionName: string } }[];
        samples: number[];
      };
      expect(prof.samples.length).toBeGreaterThan(0);
      const fns = new Set(prof.nodes.map((n) => n.callFrame.functionName));
      expect(fns.has('startBenchGateway')).toBe(false);
    }
    rmSync(profDir, { recursive: true, force: true });
  }, 60_000);

  it('--split-roles: GWs in one worker, their PNEs in the other; every member still acks', async () => {
    const lines: string[] = [];
    const r = await benchRekeyWorkers({
      sizes: [10],
      perGw: 5,
      rounds: 1,
      policies: ['unicast', 'broadcast'],
      workers: 2,
      gwWorkers: true,
      splitRoles: true,
      sgs: 0,
      sgRounds: 1,
      log: (l) => lines.push(l),
    });
    expect(lines.some((l) => l.includes('2 GWs up (in 1 worker, their PNEs in the other 1)'))).toBe(true);
    for (const p of r.points) {
      expect(p.allAckedMs).toHaveLength(1);
      expect(p.memberAckMs.p50).toBeGreaterThan(0);
      expect(median(p.trackedMs)).toBeGreaterThanOrEqual(median(p.allAckedMs) - 5);
    }
    expect(workerChildren()).toEqual([]);
  }, 60_000);
});
