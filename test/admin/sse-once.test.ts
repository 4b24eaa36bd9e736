/**
 * An admin mutation reaches each SSE client once (docs/operator.md "Live events (SSE)").
 *
 * Wired to the server's `events` (what `cpns server` does), the server itself reports every mutation made through
 * the API; the app must not stream its own notification of it a second time. Not wired (a private emitter), the
 * app's own notification is the only report and must still arrive, once. Everything over real HTTPS: two SSE
 * streams open at once, every mutation kind of the API made once.
 */
import { request } from 'node:https';
import { afterEach, describe, expect, it } from 'vitest';
import type { ChangeEvent } from '../../src/admin/types.js';
import { enrolled, randomPne, type Stack, startStack } from './fixture.js';

let s: Stack | undefined;
afterEach(async () => {
  await s?.close();
  s = undefined;
});

interface Res {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: response JSON, checked field by field by the assertions
  json: any;
}

function call(st: Stack, method: string, path: string, body?: unknown): Promise<Res> {
  return new Promise((resolve, reject) => {
    const u = new URL(path, st.url);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      {
        method,
        hostname: u.hostname,
        port: u.port,
        path: u.pathname,
        ca: st.caPem,
        headers: {
          authorization: `Bearer ${st.token}`,
          ...(payload !== undefined ? { 'content-type': 'application/json' } : {}),
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          text += c;
        });
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, json: text.length > 0 ? JSON.parse(text) : undefined }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

interface Sse {
  /** The `change` events received so far, parsed. */
  events(): ChangeEvent[];
  waitFor(pred: (evs: ChangeEvent[]) => boolean): Promise<void>;
  close(): void;
}

function openSse(st: Stack): Promise<Sse> {
  return new Promise((resolve, reject) => {
    const u = new URL('/api/v1/events', st.url);
    const req = request(
      {
        hostname: u.hostname,
        port: u.port,
        path: u.pathname,
        ca: st.caPem,
        headers: { authorization: `Bearer ${st.token}` },
      },
      (res) => {
        if (res.statusCode !== 200) {
          reject(new Error(`SSE status ${res.statusCode}`));
          return;
        }
        let text = '';
        const waiters = new Set<() => void>();
        const parse = (): ChangeEvent[] =>
          text
            .split('\n\n')
            .slice(0, -1) // the last piece is an incomplete (or empty) block
            .filter((b) => b.split('\n').includes('event: change'))
            .map((b) =>
              JSON.parse(
                b
                  .split('\n')
                  .find((l) => l.startsWith('data: '))
                  ?.slice(6) ?? 'null',
              ),
            );
        let helloed = false;
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          text += c;
          if (!helloed && text.includes('event: hello')) {
            helloed = true;
            resolve(sse);
          }
          for (const w of [...waiters]) w();
        });
        const sse: Sse = {
          events: parse,
          waitFor: (pred) =>
            new Promise((ok, ko) => {
              const check = () => {
                if (!pred(parse())) return;
                clearTimeout(t);
                waiters.delete(check);
                ok();
              };
              const t = setTimeout(() => {
                waiters.delete(check);
                ko(new Error(`timeout; got: ${text}`));
              }, 5000);
              waiters.add(check);
              check();
            }),
          close: () => req.destroy(),
        };
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** Each mutation kind of the API once; returns, per kind, the fields that identify the event it must cause. */
async function mutateAll(st: Stack): Promise<{ kind: string; match: Partial<ChangeEvent> }[]> {
  const [a, b, victim] = await enrolled(st, [randomPne(), randomPne(), randomPne()]);
  const created = await call(st, 'POST', '/api/v1/service-groups', { name: 'once', members: [a] });
  expect(created.status).toBe(201);
  const sgId: string = created.json.sgId;
  expect((await call(st, 'PATCH', `/api/v1/service-groups/${sgId}`, { joinPolicy: 'invite' })).status).toBe(
    200,
  );
  expect((await call(st, 'POST', `/api/v1/service-groups/${sgId}/members`, { pneId: b })).status).toBe(201);
  expect(
    (await call(st, 'DELETE', `/api/v1/service-groups/${sgId}/members/${encodeURIComponent(b)}`)).status,
  ).toBe(204);
  const rekey = await call(st, 'POST', `/api/v1/service-groups/${sgId}/rekey`);
  expect(rekey.status).toBe(200);
  expect((await call(st, 'POST', `/api/v1/identities/${encodeURIComponent(victim)}/revoke`)).status).toBe(
    200,
  );
  expect((await call(st, 'DELETE', `/api/v1/service-groups/${sgId}`)).status).toBe(204);
  return [
    { kind: 'sg.create', match: { sgId, epoch: created.json.currentEpoch } },
    { kind: 'sg.policy', match: { sgId } },
    { kind: 'member.add', match: { sgId, pneId: b } },
    { kind: 'member.remove', match: { sgId, pneId: b } },
    { kind: 'key.update', match: { sgId, epoch: rekey.json.epoch, reason: 'operator' } },
    { kind: 'identity.revoke', match: { identity: victim } },
    { kind: 'sg.delete', match: { sgId } },
  ];
}

const matches = (ev: ChangeEvent, kind: string, m: Partial<ChangeEvent>) =>
  ev.kind === kind &&
  Object.entries(m).every(([k, v]) => (ev as unknown as Record<string, unknown>)[k] === v);

async function expectOncePerMutation(st: Stack): Promise<void> {
  const streams = [await openSse(st), await openSse(st)];
  try {
    const expected = await mutateAll(st);
    // A marker after the last mutation: a stream is ordered, so once it has the marker it has everything the
    // mutations caused (including any late duplicate of the last one).
    st.events.emit('change', { kind: 'test.marker' });
    for (const sse of streams) {
      await sse.waitFor((evs) => evs.some((e) => e.kind === 'test.marker'));
      const evs = sse.events();
      for (const { kind, match } of expected) {
        expect(
          evs.filter((e) => matches(e, kind, match)),
          `${kind} ${JSON.stringify(match)} in ${JSON.stringify(evs)}`,
        ).toHaveLength(1);
      }
      // Nor is any other event streamed twice (each mutation causes distinct events: e.g. a removal's own
      // key.update has the removal's reason and the next epoch).
      const seen = evs.map((e) => JSON.stringify(e));
      expect(new Set(seen).size, JSON.stringify(evs)).toBe(seen.length);
    }
  } finally {
    for (const sse of streams) sse.close();
  }
}

describe('SSE: an admin mutation reaches each client once', () => {
  it("wired to the server's events (cpns server): the server's report only, no second copy from the API", async () => {
    s = await startStack({ serverWired: true });
    await expectOncePerMutation(s);
  });

  it("not wired to the server's events: the API's own notifications still arrive, once", async () => {
    s = await startStack();
    await expectOncePerMutation(s);
  });
});
