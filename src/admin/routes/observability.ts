/**
 * Prometheus metrics and the probes (docs/operator.md). `/healthz` and `/readyz` are public and return no data
 * beyond ok / not ready and which dependency did not answer; `/metrics` needs the token unless the app was built
 * with `publicMetrics`.
 */
import type { FastifyInstance } from 'fastify';
import type { CpnsMetrics } from '../../metrics/index.js';
import type { Store } from '../../store/store.js';
import { PUBLIC } from '../auth.js';
import { httpError } from '../errors.js';
import * as S from '../schemas.js';

/** A Service Group id that is never allocated: `/readyz` looks it up as its cheap store round trip. */
const READY_PROBE_SG = '00000000-0000-0000-0000-000000000000';

interface ObservabilityContext {
  store: Store;
  metrics: CpnsMetrics;
  publicMetrics: boolean | undefined;
  bus: { ping(): Promise<void> } | undefined;
  readyTimeoutMs: number;
}

export function registerObservabilityRoutes(app: FastifyInstance, ctx: ObservabilityContext): void {
  registerMetricsRoute(app, ctx);
  registerProbeRoutes(app, ctx);
}

function registerMetricsRoute(app: FastifyInstance, { store, metrics, publicMetrics }: ObservabilityContext) {
  app.get(
    '/metrics',
    {
      config: { public: publicMetrics === true },
      schema: {
        tags: ['observability'],
        operationId: 'getMetrics',
        summary: `Prometheus metrics (text exposition format)${publicMetrics ? '' : '; bearer token'}`,
        produces: ['text/plain'],
        response: {
          200: { type: 'string', description: 'Prometheus text exposition format 0.0.4' },
          ...(publicMetrics ? S.errors(500, 503) : S.errors(401, 500, 503)),
        },
        ...(publicMetrics ? { security: [] } : {}),
      },
    },
    async (_req, reply) => {
      await refreshGauges(store, metrics);
      const text = await metrics.text();
      return reply.header('content-type', metrics.contentType).send(text);
    },
  );
}

/** Gauges that the store can answer at scrape time (groups, members, lagging members, GWs per cluster node). */
async function refreshGauges(store: Store, metrics: CpnsMetrics): Promise<void> {
  const groups = await store.listGroups();
  let members = 0;
  let lagging = 0;
  for (const g of groups) {
    const st = await store.deliveryStatus(g.sgId);
    members += st.members.length;
    lagging += st.members.filter((m) => m.lag > 0).length;
  }
  metrics.setGroups(groups.length);
  metrics.setMembers(members);
  metrics.setLagging(lagging);
  // In a cluster: which node holds the sessions of the online GWs (none on one node: no leases).
  const leases = await store.listGwLeases();
  if (leases.length === 0) return;
  const online = new Set((await store.listPns()).filter((p) => p.online).map((p) => p.gwId));
  const byNode = new Map<string, number>();
  for (const l of leases) if (online.has(l.gwId)) byNode.set(l.nodeId, (byNode.get(l.nodeId) ?? 0) + 1);
  metrics.setGatewaysByNode(byNode);
}

/** True when `check` resolves within `ms`; false when it rejects or is late (its error goes to `onError`). */
async function answers(check: () => Promise<unknown>, ms: number, onError: (e: unknown) => void) {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => {
      onError(new Error(`no answer within ${ms} ms`));
      resolve(false);
    }, ms);
  });
  try {
    return await Promise.race([
      check().then(
        () => true,
        (e: unknown) => {
          onError(e);
          return false;
        },
      ),
      late,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function registerProbeRoutes(app: FastifyInstance, { store, bus, readyTimeoutMs }: ObservabilityContext) {
  app.get(
    '/healthz',
    {
      config: PUBLIC,
      schema: {
        tags: ['observability'],
        operationId: 'getLiveness',
        summary: 'Liveness: the admin app answers (no token)',
        security: [],
        response: S.responses.healthz,
      },
    },
    async (_req, reply) => reply.header('cache-control', 'no-store').send({ status: 'ok' }),
  );

  app.get(
    '/readyz',
    {
      config: PUBLIC,
      schema: {
        tags: ['observability'],
        operationId: 'getReadiness',
        summary:
          'Readiness: the store answers a lookup and, in a cluster, the bus a round trip (no token); 503 NOT_READY otherwise',
        security: [],
        response: S.responses.readyz,
      },
    },
    async (req, reply) => {
      reply.header('cache-control', 'no-store');
      // Both at once, each within the timeout; what failed goes to the log, only its name to the client.
      const [storeOk, busOk] = await Promise.all([
        answers(
          () => store.getGroup(READY_PROBE_SG),
          readyTimeoutMs,
          (err) => req.log.warn({ err }, 'readiness probe: store unavailable'),
        ),
        bus === undefined
          ? true
          : answers(
              () => bus.ping(),
              readyTimeoutMs,
              (err) => req.log.warn({ err }, 'readiness probe: bus unavailable'),
            ),
      ]);
      if (storeOk && busOk) return reply.send({ status: 'ready' });
      const down = [storeOk ? [] : ['store'], busOk ? [] : ['bus']].flat().join(' and ');
      const e = httpError(503, 'NOT_READY', `${down} unavailable`);
      return reply.code(503).send(e.body);
    },
  );
}
