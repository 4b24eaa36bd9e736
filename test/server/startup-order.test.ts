import { afterAll, expect, it } from 'vitest';
import { openServerStore } from '../../src/embed/index.js';
import { PnGateway } from '../../src/gateway/index.js';
import { CpnsServer } from '../../src/server/index.js';
import type { Store } from '../../src/store/store.js';
import { freePort } from '../free-port.js';
import { BACKOFF, startServer, tempDir } from '../integration/helpers.js';

const tmp = tempDir();
const closers: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of closers.reverse()) await c().catch(() => {});
  tmp.cleanup();
});

/** The real store, with listGroups answering after `ms` (what a slow database looks like to the server). */
function slowListGroups(store: Store, ms: number): Store {
  return new Proxy(store, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver);
      if (prop === 'listGroups') {
        return async (...a: unknown[]) => {
          await new Promise((r) => setTimeout(r, ms));
          return (v as (...x: unknown[]) => unknown).apply(target, a);
        };
      }
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

it('a GW connecting while the server loads its state registers as soon as the server is up', async () => {
  const port = await freePort();
  const first = await startServer(tmp.dir, { port });
  const credentials = await PnGateway.enroll({
    enrollUrl: first.enrollUrl,
    caPem: first.caPem,
    token: await first.admin.createToken('gw'),
  });
  const url = first.url;
  await first.close();

  const store = slowListGroups(await openServerStore(tmp.dir), 1500);
  const starting = CpnsServer.start({ store, port, heartbeat: false });
  const t0 = Date.now();
  const gw = PnGateway.start({
    serverUrl: url,
    credentials,
    heartbeat: false,
    reconnect: BACKOFF,
    startTimeoutMs: 6000,
  });
  const server = await starting;
  closers.push(() => server.close());
  const g = await gw;
  closers.push(() => g.close());
  const registeredAfter = Date.now() - t0;
  // Up after the 1.5 s load, registered within a few backoff steps of that (not after a request timeout).
  expect(registeredAfter).toBeLessThan(4000);
  expect((await server.admin.listPns()).find((p) => p.gwId === g.identity)?.online).toBe(true);
}, 30_000);
