/**
 * Live change events (docs/operator.md, "Live events"): the `/api/v1/events` Server-Sent Events stream, and the
 * feed that makes each API mutation reach a stream once. Events are whitelisted field by field before they are
 * written (`sanitizeEvent`), so a server event can never carry key material to a browser.
 */
import { EventEmitter } from 'node:events';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ADMIN_DEFAULTS } from './defaults.js';
import { httpError } from './errors.js';
import * as S from './schemas.js';
import type { ChangeEvent } from './types.js';

const EVENT_FIELDS: readonly (keyof ChangeEvent)[] = [
  'kind',
  'sgId',
  'epoch',
  'reason',
  'pneId',
  'gwId',
  'identity',
  'online',
  'updateId',
];

/** Keeps only the whitelisted primitive fields of a server event (never key material, never big blobs). */
export function sanitizeEvent(ev: unknown): ChangeEvent | undefined {
  if (typeof ev !== 'object' || ev === null) return undefined;
  const src = ev as Record<string, unknown>;
  if (typeof src.kind !== 'string' || !/^[a-z][a-z0-9_.:-]{0,63}$/.test(src.kind)) return undefined;
  const out: Record<string, unknown> = {};
  for (const k of EVENT_FIELDS) {
    const v = src[k];
    if ((typeof v === 'string' && v.length <= 200) || typeof v === 'boolean') out[k] = v;
    else if (typeof v === 'number' && Number.isSafeInteger(v)) out[k] = v;
  }
  return out as unknown as ChangeEvent;
}

/** Runs an admin mutation, then streams `report(result)` unless the server's `events` already reported it. */
export type Mutate = <T>(run: () => Promise<T>, report: (r: T) => ChangeEvent) => Promise<T>;

export interface ChangeFeed {
  mutate: Mutate;
  /** Calls `listener` with every raw change event (the server's and the API's own); returns the unsubscribe. */
  subscribe(listener: (ev: unknown) => void): () => void;
}

/**
 * Each mutation reaches a stream once. Wired to the server's `events` (as `cpns server` is), the server reports
 * every mutation itself, synchronously, before the admin call returns: the app's own notification is then a
 * duplicate and is dropped. It is the fallback for an app without the server's events (or with an emitter that
 * does not carry them): emitted only if no matching event came from `events` while the mutation ran.
 */
export function createChangeFeed(app: FastifyInstance, events: EventEmitter | undefined): ChangeFeed {
  const local = new EventEmitter();
  local.setMaxListeners(0);
  const inFlight = new Set<ChangeEvent[]>();
  const record = (ev: unknown) => {
    if (inFlight.size === 0) return;
    const clean = sanitizeEvent(ev);
    if (clean) for (const seen of inFlight) seen.push(clean);
  };
  events?.on('change', record);
  app.addHook('onClose', async () => {
    events?.off('change', record);
  });
  const mutate = async <T>(run: () => Promise<T>, report: (r: T) => ChangeEvent): Promise<T> => {
    const seen: ChangeEvent[] = [];
    inFlight.add(seen);
    let r: T;
    try {
      r = await run();
    } finally {
      inFlight.delete(seen);
    }
    const ev = report(r);
    const same = (e: ChangeEvent) => EVENT_FIELDS.every((k) => ev[k] === undefined || e[k] === ev[k]);
    if (!seen.some(same)) local.emit('change', ev);
    return r;
  };
  const subscribe = (listener: (ev: unknown) => void) => {
    local.on('change', listener);
    events?.on('change', listener);
    return () => {
      local.off('change', listener);
      events?.off('change', listener);
    };
  };
  return { mutate, subscribe };
}

/** `GET /api/v1/events`, and the `preClose` hook that ends the open streams so that `app.close()` returns. */
export function registerEventStream(
  app: FastifyInstance,
  feed: ChangeFeed,
  limits: { maxStreams: number; keepAliveMs: number },
): void {
  const streams = new Set<FastifyReply>();
  app.get(
    '/api/v1/events',
    {
      schema: {
        tags: ['events'],
        operationId: 'streamEvents',
        summary:
          "Server-Sent Events: 'change' events ({kind, sgId?, epoch?, reason?, pneId?, gwId?, identity?}) " +
          `telling the client what to refetch; a comment line every ${ADMIN_DEFAULTS.keepAliveMs / 1000} s keeps the stream open`,
        produces: ['text/event-stream'],
        response: S.responses.events,
      },
    },
    (req: FastifyRequest, reply: FastifyReply) => {
      if (streams.size >= limits.maxStreams) {
        const e = httpError(503, 'TOO_MANY_STREAMS', 'too many event streams');
        return reply.code(503).send(e.body);
      }
      openStream(req, reply, feed, limits.keepAliveMs, streams);
    },
  );
  app.addHook('preClose', async () => {
    for (const r of [...streams]) r.raw.end();
    streams.clear();
  });
}

/** Takes the socket over from fastify and writes events to it (tracked in `streams`) until either side closes. */
function openStream(
  req: FastifyRequest,
  reply: FastifyReply,
  feed: ChangeFeed,
  keepAliveMs: number,
  streams: Set<FastifyReply>,
): void {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'x-accel-buffering': 'no',
  });
  let id = 0;
  const write = (s: string) => {
    if (!res.writableEnded) res.write(s);
  };
  const onChange = (ev: unknown) => {
    const clean = sanitizeEvent(ev);
    if (clean) write(`id: ${++id}\nevent: change\ndata: ${JSON.stringify(clean)}\n\n`);
  };
  write(`retry: ${ADMIN_DEFAULTS.sseRetryMs}\nevent: hello\ndata: ${JSON.stringify({ at: Date.now() })}\n\n`);
  const unsubscribe = feed.subscribe(onChange);
  const ka = setInterval(() => write(': keep-alive\n\n'), keepAliveMs);
  ka.unref();
  streams.add(reply);
  const done = () => {
    clearInterval(ka);
    unsubscribe();
    streams.delete(reply);
  };
  res.once('close', done);
  req.raw.once('close', done);
}
