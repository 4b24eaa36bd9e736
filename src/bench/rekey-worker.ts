/**
 * A worker process of `cpns bench rekey` (docs/benchmarks.md "10,000 members: worker processes", issue #11 §2):
 * it hosts a share of the simulated PNEs (SimPne: a real mTLS session to its real GW, the real control protocol,
 * the end-to-end tunnel to the server, real UDP multicast for broadcasts) and, with `--gw-workers`, the real PN
 * GWs they sit behind. Driven over the IPC channel only: the one-time enrollment tokens come over it (never on a
 * command line or in the environment), each PNE and GW generates its own key here and enrolls itself, and ack
 * times (performance.timeOrigin + performance.now(), comparable across processes) and byte counts go back over
 * it. Exits when its parent goes away (the IPC channel closes), so no worker outlives the benchmark. Its one
 * argument is its directory (a path inside the parent's temporary directory, no secret).
 * Internal: not a public entry point.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import pino from 'pino';
import type { PnGateway } from '../gateway/index.js';
import { PneClient } from '../pne/index.js';
import { startBenchGateway } from './bench-gateway.js';
import { CpuProfile } from './cpu-profile.js';
import { pool } from './measure.js';
import type { WaitReply, WorkerRequest } from './rekey-protocol.js';
import { SimPne } from './sim-pne.js';

const send = (m: object) => process.send?.(m);
const logger = pino({ level: 'silent' });

/** `dir`: this worker's own directory (the GWs' broadcast state), inside the parent's, which removes it too. */
async function main(dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const gws = new Map<number, PnGateway>();
  const sims = new Map<number, SimPne>();
  let broadcastBytes = 0;
  let closing = false;
  let profile: CpuProfile | undefined;
  const close = async () => {
    closing = true;
    await Promise.all([...sims.values()].map((s) => s.close().catch(() => {})));
    await pool([...gws.values()], 16, (g) => g.close().catch(() => {}));
    rmSync(dir, { recursive: true, force: true });
  };
  // The parent went away (exit, crash, SIGKILL): so do we.
  process.on('disconnect', () => {
    if (!closing) void close().finally(() => process.exit(1));
  });
  process.on('message', async (m: WorkerRequest) => {
    try {
      if (m.t === 'gws') {
        const out: { i: number; url: string; enrollUrl: string }[] = [];
        await pool(m.items, 8, async ({ i, token, port }) => {
          const gw = await startBenchGateway({
            serverUrl: m.serverUrl,
            enrollUrl: m.enrollUrl,
            caPem: m.caPem,
            token,
            logger,
            dataDir: join(dir, `gw${i}`),
            port,
            onBroadcastBytes: (n) => {
              broadcastBytes += n;
            },
          });
          gws.set(i, gw);
          out.push({ i, url: gw.url, enrollUrl: gw.enrollUrl });
        });
        send({ t: 'reply', id: m.id, gws: out });
      } else if (m.t === 'pnes') {
        const out: { i: number; identity: string }[] = [];
        await pool(m.items, 16, async ({ i, gwUrl, gwEnrollUrl, token }) => {
          const c = await PneClient.enroll({ enrollUrl: gwEnrollUrl, caPem: m.caPem, token });
          const sim = await SimPne.connect(gwUrl, c, ['wifi']);
          sims.set(i, sim);
          out.push({ i, identity: sim.identity });
        });
        send({ t: 'reply', id: m.id, pnes: out });
      } else if (m.t === 'wait') {
        const members = m.members.map((i) => sims.get(i)!);
        await Promise.all(members.map((s) => s.waitEpoch(m.sgId, m.epoch)));
        const times = members.map((s) => performance.timeOrigin + s.acked.get(m.sgId)!.get(m.epoch)!);
        let unicastBytes = 0;
        for (const s of sims.values()) unicastBytes += s.unicastBytes;
        const cpu = process.cpuUsage();
        send({
          t: 'reply',
          id: m.id,
          times,
          unicastBytes,
          broadcastBytes,
          cpu: { user: cpu.user, system: cpu.system },
        } satisfies WaitReply & { t: string; id: number });
      } else if (m.t === 'profile') {
        if (m.file === undefined) profile ??= await CpuProfile.start();
        else {
          await profile?.stop(m.file);
          profile = undefined;
        }
        send({ t: 'reply', id: m.id });
      } else if (m.t === 'close') {
        await close();
        send({ t: 'reply', id: m.id });
        process.disconnect();
        process.exit(0);
      }
    } catch (e) {
      const err = e as { code?: string; message?: string };
      // codes and fixed texts only: a token or key never goes into an error reply
      send({ t: 'reply', id: m.id, error: String(err.code ?? 'ERROR') });
    }
  });
  send({ t: 'ready' });
}

// Only as a forked worker (with an IPC channel and its directory): importing this module starts nothing.
if (process.send && process.argv[2]) void main(process.argv[2]);
