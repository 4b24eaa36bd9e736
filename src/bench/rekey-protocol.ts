/**
 * What `cpns bench rekey`'s parent and its worker processes (rekey-workers.ts, rekey-worker.ts) say to each other
 * over IPC, and the bench's connection limits. No side effects: importing this starts nothing.
 */
export type WorkerRequest =
  | {
      t: 'gws';
      id: number;
      serverUrl: string;
      enrollUrl: string;
      caPem: string;
      items: { i: number; token: string; port: number }[];
    }
  | {
      t: 'pnes';
      id: number;
      caPem: string;
      items: { i: number; gwUrl: string; gwEnrollUrl: string; token: string }[];
    }
  | { t: 'wait'; id: number; sgId: string; epoch: number; members: number[] }
  /** Start a CPU profile of the worker, or stop it and write it to `file` (`--cpu-prof`, cpu-profile.ts). */
  | { t: 'profile'; id: number; file?: string }
  | { t: 'close'; id: number };

export interface WaitReply {
  /** Absolute ack times (performance.timeOrigin + performance.now() at the ack), one per member asked for. */
  readonly times: number[];
  /** Key delivery bytes received by unicast so far by all the PNEs of this worker. */
  readonly unicastBytes: number;
  /** Broadcast bytes sent so far by the GWs of this worker. */
  readonly broadcastBytes: number;
  /** process.cpuUsage() of this worker so far (µs). */
  readonly cpu: { user: number; system: number };
}

/** The bench's limits on not-yet-authenticated connections: its own setup stampede, not an attack. */
export const BENCH_LIMITS = { maxUnauthenticated: 4096, maxUnauthenticatedPerAddress: 4096 } as const;
