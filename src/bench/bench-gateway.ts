/**
 * One PN GW of `cpns bench rekey` (docs/benchmarks.md), the same whether it runs in the benchmark's process or in
 * a worker (rekey-workers.ts, rekey-worker.ts): enrolled with a one-time token, broadcast on loopback multicast
 * with its own port, the bench's connection limits, and its broadcast bytes counted.
 */
import type pino from 'pino';
import { PnGateway } from '../gateway/index.js';
import { BENCH_LIMITS } from './rekey-protocol.js';

/** Multicast group of the bench's GWs; each GW has a port of its own. */
export const BENCH_BROADCAST_GROUP = '239.255.78.1';

export async function startBenchGateway(o: {
  serverUrl: string;
  enrollUrl: string;
  caPem: string;
  token: string;
  logger: pino.Logger;
  dataDir: string;
  port: number;
  onBroadcastBytes: (n: number) => void;
}): Promise<PnGateway> {
  const credentials = await PnGateway.enroll({ enrollUrl: o.enrollUrl, caPem: o.caPem, token: o.token });
  const gw = await PnGateway.start({
    serverUrl: o.serverUrl,
    credentials,
    heartbeat: false,
    logger: o.logger,
    limits: BENCH_LIMITS,
    enrollLimits: BENCH_LIMITS,
    dataDir: o.dataDir,
    broadcastMedia: [{ name: 'wifi', group: BENCH_BROADCAST_GROUP, port: o.port }],
  });
  gw.on('delivery', (d: { bytes: number }) => o.onBroadcastBytes(d.bytes));
  return gw;
}
