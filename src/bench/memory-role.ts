/**
 * A role of `cpns bench memory` in its own process (docs/benchmarks.md "Memory per connection"): a CPNS Server or
 * one PN GW, driven over IPC by the benchmark, which asks it for its memory after a full GC. Internal: not a
 * public entry point.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import pino from 'pino';
import { startServer } from '../embed/index.js';
import { type Credentials, PnGateway } from '../gateway/index.js';

setFlagsFromString('--expose_gc');
const gc = runInNewContext('gc') as () => void;

export interface MemorySample {
  readonly rss: number;
  readonly heapUsed: number;
  /** Memory of JS objects bound to C++ (Buffers, TLS) outside the V8 heap. */
  readonly external: number;
}

type Request =
  | { t: 'measure'; id: number }
  | { t: 'token'; id: number; role: 'gw' | 'pne' }
  | { t: 'gw'; id: number; serverUrl: string; credentials: Credentials }
  | { t: 'close'; id: number };

const send = (m: object) => process.send?.(m);
const logger = pino({ level: 'silent' });
const dir = mkdtempSync(join(tmpdir(), 'cpns-bench-mem-'));

async function sample(): Promise<MemorySample> {
  // twice, with a turn of the event loop between: weak callbacks and finalizers run after the first
  gc();
  await new Promise((r) => setImmediate(r));
  gc();
  const m = process.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed, external: m.external };
}

async function main(): Promise<void> {
  const role = process.argv[2];
  let close: () => Promise<void> = async () => {};
  let createToken: ((r: 'gw' | 'pne') => Promise<string>) | undefined;
  if (role === 'server') {
    const server = await startServer({ dataDir: join(dir, 'server'), logger });
    createToken = (r) => server.admin.createToken(r);
    close = () => server.close();
    send({ t: 'ready', url: server.url, enrollUrl: server.enrollUrl, caPem: server.caPem });
  } else send({ t: 'ready' });
  process.on('message', async (m: Request) => {
    try {
      if (m.t === 'measure') send({ t: 'reply', id: m.id, sample: await sample() });
      else if (m.t === 'token' && createToken)
        send({ t: 'reply', id: m.id, token: await createToken(m.role) });
      else if (m.t === 'gw') {
        const gw = await PnGateway.start({ serverUrl: m.serverUrl, credentials: m.credentials, logger });
        close = () => gw.close();
        send({ t: 'reply', id: m.id, url: gw.url, enrollUrl: gw.enrollUrl });
      } else if (m.t === 'close') {
        await close();
        rmSync(dir, { recursive: true, force: true });
        send({ t: 'reply', id: m.id });
        process.exit(0);
      }
    } catch (e) {
      send({ t: 'reply', id: m.id, error: String((e as { code?: string }).code ?? 'ERROR') });
    }
  });
}

void main();
