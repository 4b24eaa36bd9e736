/**
 * Admin REST API, SSE event stream, Prometheus endpoint and web console of the CPNS Server (docs/operator.md).
 *
 * - Authentication is decided on the route the router matched, never on the URL string: every route, and the
 *   not-found handler, needs the bearer token (constant-time compare) unless its route config says
 *   `{ public: true }` (console files, `/openapi.json`, `/healthz`, `/readyz`, `/metrics` with `publicMetrics`).
 * - `/api/v1/...`: JSON schemas on every body / query / params (unknown fields refused), errors
 *   `{error:{code,message,field?}}` with stable codes and no stack traces; framework errors (bad URL encoding,
 *   too-long path parameter, unparsable request) use the same envelope and never echo the request.
 * - Mutations go through the server's `ServerAdmin` only; reads come from the store. Group Key bytes are never
 *   read here: only key metadata (`listKeyEpochs`) and delivery status, and responses are serialized by schema.
 * - `/api/v1/events`: Server-Sent Events; same bearer header (the console reads the stream with fetch(), so the
 *   token never goes into a URL or a cookie).
 * - `/openapi.json` (generated from the route schemas), `/metrics`, `/console/`, `/healthz`, `/readyz`.
 */

import fastify, { type FastifyInstance } from 'fastify';
import type { DeliveryStatus, KeyMeta, ServiceGroup } from '../store/store.js';
import { bearerAuth, PUBLIC } from './auth.js';
import { loadConsole, registerConsoleRoutes } from './console-files.js';
import { ADMIN_DEFAULTS } from './defaults.js';
import { ApiError, httpError } from './errors.js';
import { createChangeFeed, registerEventStream } from './events.js';
import { errorHandler, notFoundHandler, parserErrors, routerErrors } from './framework-errors.js';
import { registerOpenApi, registerOpenApiRoute } from './openapi.js';
import * as S from './schemas.js';
import type { AdminAppOptions } from './types.js';

const API = '/api/v1';
const SUITE_NAMES: Readonly<Record<number, string>> = { 1: 'aes-256-gcm', 2: 'chacha20-poly1305' };

/** A Service Group id that is never allocated: `/readyz` looks it up as its cheap store round trip. */
const READY_PROBE_SG = '00000000-0000-0000-0000-000000000000';

function wireGroup(g: ServiceGroup, currentEpoch: number, members: string[]) {
  return {
    sgId: g.sgId,
    name: g.name,
    ownerId: g.ownerId,
    joinPolicy: g.joinPolicy,
    suite: SUITE_NAMES[g.suite] ?? 'aes-256-gcm',
    sourceAuth: g.sourceAuth,
    updateOnJoin: g.updateOnJoin,
    rekeyIntervalSec: g.rekeyIntervalSec,
    deliveryPolicy: g.deliveryPolicy,
    createdAt: g.createdAt,
    currentEpoch,
    memberCount: members.length,
    members,
  };
}

const keyEpoch = (k: KeyMeta) => ({
  epoch: k.epoch,
  createdAt: k.createdAt,
  reason: k.reason,
  activateAt: k.activateAt,
});

/** Builds the admin app (not listening). The caller listens: `await app.listen({ host, port })`. */
export async function buildAdminApp(o: AdminAppOptions): Promise<FastifyInstance> {
  const requireToken = bearerAuth(o.auth.token);
  const consoleFiles = loadConsole(o.consoleDir);

  const app = fastify({
    ...(o.https ? { https: { minVersion: 'TLSv1.3', ...o.https } } : {}),
    ...(o.logger ? { loggerInstance: o.logger } : { logger: false }),
    bodyLimit: ADMIN_DEFAULTS.bodyLimitBytes,
    return503OnClosing: true,
    // Strict router, stated explicitly (docs/operator.md). Authentication does not rely on these: it is read
    // from the matched route, so whatever spelling the router accepts, it gets that route's policy.
    routerOptions: {
      caseSensitive: true,
      ignoreTrailingSlash: false,
      ignoreDuplicateSlashes: false,
      maxParamLength: ADMIN_DEFAULTS.maxParamLength,
    },
    // The router's own errors (bad percent-encoding, too-long parameter): our envelope, not fastify's reply
    // (which echoes the path).
    frameworkErrors: routerErrors,
    // Requests node's HTTP parser refuses (bad request line, header overflow, timeout).
    clientErrorHandler: parserErrors,
    ajv: {
      customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false },
    },
  }) as unknown as FastifyInstance;

  // JSON only: any other body type is 415 UNSUPPORTED_MEDIA_TYPE.
  app.removeContentTypeParser('text/plain');
  for (const s of S.componentSchemas()) app.addSchema(s);

  await registerOpenApi(app);

  // ------------------------------------------------------------------ cross-cutting hooks

  app.addHook('onRequest', requireToken);
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler(notFoundHandler);

  // ------------------------------------------------------------------ helpers

  const feed = createChangeFeed(app, o.events);
  const mutate = feed.mutate;
  const requireGroup = async (sgId: string): Promise<ServiceGroup> => {
    const g = await o.store.getGroup(sgId);
    if (!g) throw new ApiError(404, 'NOT_FOUND', 'no such Service Group', 'sgId');
    return g;
  };
  const statusOf = async (sgId: string): Promise<DeliveryStatus> => o.store.deliveryStatus(sgId);
  const memberStates = async (sgId: string, st: DeliveryStatus) => {
    const joined = new Map((await o.store.listMembers(sgId)).map((m) => [m.pneId, m.joinedAt]));
    return st.members.map((m) => ({
      pneId: m.pneId,
      gwId: m.gwId,
      online: m.online,
      joinedAt: joined.get(m.pneId) ?? null,
      ackedEpoch: m.ackedEpoch,
      ackedAt: m.ackedAt,
      method: m.method,
      lag: m.lag,
    }));
  };
  const groupView = async (g: ServiceGroup) => {
    const [st, members] = await Promise.all([statusOf(g.sgId), o.store.listMembers(g.sgId)]);
    return wireGroup(
      g,
      st.currentEpoch,
      members.map((m) => m.pneId),
    );
  };
  const normPne = (p: string) => (p.startsWith('urn:cpns:pne:') ? p : `urn:cpns:pne:${p}`);

  // ------------------------------------------------------------------ PN inventory & identities

  app.get(
    `${API}/pns`,
    {
      schema: {
        tags: ['inventory'],
        summary: 'Personal Networks: each GW with its PNEs',
        response: S.responses.pns,
      },
    },
    async () =>
      (await o.store.listPns()).map((pn) => ({
        gwId: pn.gwId,
        online: pn.online,
        registeredAt: pn.registeredAt,
        lastSeen: pn.lastSeen,
        pnes: pn.pnes.map((p) => ({ ...p, media: [...p.media] })),
      })),
  );

  app.get(
    `${API}/pnes`,
    {
      schema: {
        tags: ['inventory'],
        summary: 'All known PNEs, attached or detached',
        response: S.responses.pnes,
      },
    },
    async () => {
      const pns = await o.store.listPns();
      const detached = await o.store.listDetachedPnes();
      return [...pns.flatMap((pn) => pn.pnes), ...detached].map((p) => ({ ...p, media: [...p.media] }));
    },
  );

  app.get(
    `${API}/gateways`,
    {
      schema: {
        tags: ['inventory'],
        summary: 'PN Gateways (online, last seen)',
        response: S.responses.gateways,
      },
    },
    async () =>
      (await o.store.listPns()).map((pn) => ({
        gwId: pn.gwId,
        online: pn.online,
        registeredAt: pn.registeredAt,
        lastSeen: pn.lastSeen,
        pneCount: pn.pnes.length,
      })),
  );

  app.get<{ Querystring: { role?: 'gw' | 'pne' } }>(
    `${API}/identities`,
    {
      schema: {
        tags: ['identities'],
        summary: 'Enrolled identities (GWs and PNEs) and their revocation state',
        querystring: S.identitiesQuery,
        response: S.responses.identities,
      },
    },
    async (req) =>
      (await o.store.listIdentities(req.query.role)).map((i) => ({
        id: i.id,
        role: i.role,
        certSerial: i.certSerial,
        createdAt: i.createdAt,
        revokedAt: i.revokedAt,
      })),
  );

  app.post<{ Body: { role: 'gw' | 'pne'; ttlSec?: number } }>(
    `${API}/enrollment-tokens`,
    {
      schema: {
        tags: ['identities'],
        summary: 'Create a one-time enrollment token for a GW or a PNE',
        body: S.createTokenBody,
        response: S.responses.token,
      },
    },
    async (req, reply) => {
      const ttlSec = req.body.ttlSec ?? ADMIN_DEFAULTS.enrollmentTokenTtlSec;
      const token = await o.admin.createToken(req.body.role, ttlSec);
      return reply.code(201).send({ token, role: req.body.role, expiresAt: Date.now() + ttlSec * 1000 });
    },
  );

  app.post<{ Params: { id: string } }>(
    `${API}/identities/:id/revoke`,
    {
      schema: {
        tags: ['identities'],
        summary: 'Revoke a GW or PNE identity (its sessions close; its Service Groups get a new key)',
        params: S.identityParams,
        response: S.responses.revoke,
      },
    },
    async (req) => {
      await mutate(
        () => o.admin.revoke(req.params.id),
        () => ({ kind: 'identity.revoke', identity: req.params.id }),
      );
      const i = await o.store.getIdentity(req.params.id);
      if (!i) throw new ApiError(404, 'NOT_FOUND', 'no such identity', 'id');
      return {
        id: i.id,
        role: i.role,
        certSerial: i.certSerial,
        createdAt: i.createdAt,
        revokedAt: i.revokedAt,
      };
    },
  );

  // ------------------------------------------------------------------ Service Groups

  app.get(
    `${API}/service-groups`,
    { schema: { tags: ['service-groups'], summary: 'List Service Groups', response: S.responses.groups } },
    async () => {
      const out = [];
      for (const g of await o.store.listGroups()) out.push(await groupView(g));
      return out;
    },
  );

  app.post<{
    Body: {
      name: string;
      joinPolicy?: 'open' | 'invite';
      suite?: 'aes-256-gcm' | 'chacha20-poly1305';
      sourceAuth?: boolean;
      updateOnJoin?: boolean;
      rekeyIntervalSec?: number;
      members?: string[];
      deliveryPolicy?: { broadcast: boolean; broadcastThreshold: number; ackTimeoutMs: number };
    };
  }>(
    `${API}/service-groups`,
    {
      schema: {
        tags: ['service-groups'],
        summary: 'Create a Service Group (its first Group Key is created and delivered at once)',
        body: S.createGroupBody,
        response: S.responses.groupCreated,
      },
    },
    async (req, reply) => {
      const { sgId } = await mutate(
        () => o.admin.createGroup({ ...req.body }),
        (r) => ({ kind: 'sg.create', sgId: r.sgId, epoch: r.epoch }),
      );
      const g = await requireGroup(sgId);
      return reply.code(201).send(await groupView(g));
    },
  );

  app.get<{ Params: { sgId: string } }>(
    `${API}/service-groups/:sgId`,
    {
      schema: {
        tags: ['service-groups'],
        summary: 'One Service Group with its policy and members',
        params: S.sgParams,
        response: S.responses.group,
      },
    },
    async (req) => groupView(await requireGroup(req.params.sgId)),
  );

  app.patch<{
    Params: { sgId: string };
    Body: {
      joinPolicy?: 'open' | 'invite';
      rekeyIntervalSec?: number | null;
      sourceAuth?: boolean;
      updateOnJoin?: boolean;
      deliveryPolicy?: { broadcast: boolean; broadcastThreshold: number; ackTimeoutMs: number } | null;
    };
  }>(
    `${API}/service-groups/:sgId`,
    {
      schema: {
        tags: ['service-groups'],
        summary:
          'Change a Service Group policy: join mode, update on join, periodic update interval, source authentication',
        params: S.sgParams,
        body: S.updatePolicyBody,
        response: S.responses.group,
      },
    },
    async (req) => {
      await requireGroup(req.params.sgId);
      await mutate(
        () => o.admin.updatePolicy(req.params.sgId, { ...req.body }),
        () => ({ kind: 'sg.policy', sgId: req.params.sgId }),
      );
      return groupView(await requireGroup(req.params.sgId));
    },
  );

  app.delete<{ Params: { sgId: string } }>(
    `${API}/service-groups/:sgId`,
    {
      schema: {
        tags: ['service-groups'],
        summary: 'Delete a Service Group (its keys are deleted; the id is retired)',
        params: S.sgParams,
        response: S.responses.noContent,
      },
    },
    async (req, reply) => {
      await requireGroup(req.params.sgId);
      await mutate(
        () => o.admin.deleteGroup(req.params.sgId),
        () => ({ kind: 'sg.delete', sgId: req.params.sgId }),
      );
      return reply.code(204).send();
    },
  );

  app.get<{ Params: { sgId: string } }>(
    `${API}/service-groups/:sgId/members`,
    {
      schema: {
        tags: ['service-groups'],
        summary: 'Members with their key delivery state',
        params: S.sgParams,
        response: S.responses.members,
      },
    },
    async (req) => {
      await requireGroup(req.params.sgId);
      return memberStates(req.params.sgId, await statusOf(req.params.sgId));
    },
  );

  app.post<{ Params: { sgId: string }; Body: { pneId: string } }>(
    `${API}/service-groups/:sgId/members`,
    {
      schema: {
        tags: ['service-groups'],
        summary:
          'Add a member (with update on join, the Group Key is updated and the member gets only the new one)',
        params: S.sgParams,
        body: S.addMemberBody,
        response: S.responses.memberAdded,
      },
    },
    async (req, reply) => {
      await requireGroup(req.params.sgId);
      const pneId = normPne(req.body.pneId);
      await mutate(
        () => o.admin.addMember(req.params.sgId, pneId),
        () => ({ kind: 'member.add', sgId: req.params.sgId, pneId }),
      );
      return reply.code(201).send({ sgId: req.params.sgId, pneId });
    },
  );

  app.post<{ Params: { sgId: string }; Body: { pneIds: string[] } }>(
    `${API}/service-groups/:sgId/members/batch`,
    {
      schema: {
        tags: ['service-groups'],
        summary: 'Add several members at once (with update on join: one Group Key update for the batch)',
        params: S.sgParams,
        body: S.addMembersBody,
        response: S.responses.membersAdded,
      },
    },
    async (req, reply) => {
      await requireGroup(req.params.sgId);
      const pneIds = [...new Set(req.body.pneIds.map(normPne))];
      await mutate(
        () => o.admin.addMembers(req.params.sgId, pneIds),
        () => ({ kind: 'member.add', sgId: req.params.sgId }),
      );
      return reply.code(201).send({ sgId: req.params.sgId, pneIds });
    },
  );

  app.delete<{ Params: { sgId: string; pneId: string } }>(
    `${API}/service-groups/:sgId/members/:pneId`,
    {
      schema: {
        tags: ['service-groups'],
        summary: 'Remove a member (the Group Key is updated at once, without grace)',
        params: S.memberParams,
        response: S.responses.noContent,
      },
    },
    async (req, reply) => {
      await requireGroup(req.params.sgId);
      const pneId = normPne(req.params.pneId);
      await mutate(
        () => o.admin.removeMember(req.params.sgId, pneId),
        () => ({ kind: 'member.remove', sgId: req.params.sgId, pneId }),
      );
      return reply.code(204).send();
    },
  );

  app.get<{ Params: { sgId: string } }>(
    `${API}/service-groups/:sgId/key`,
    {
      schema: {
        tags: ['keys'],
        summary:
          'Group Key status: epochs (created, reason) and per-member / per-GW ack state; never key bytes',
        params: S.sgParams,
        response: S.responses.keyStatus,
      },
    },
    async (req) => {
      const sgId = req.params.sgId;
      await requireGroup(sgId);
      const [st, epochs] = await Promise.all([statusOf(sgId), o.store.listKeyEpochs(sgId)]);
      const members = await memberStates(sgId, st);
      const cur = epochs.find((k) => k.epoch === st.currentEpoch);
      return {
        sgId,
        currentEpoch: st.currentEpoch,
        current: cur ? keyEpoch(cur) : null,
        epochs: epochs.map(keyEpoch),
        lagging: members.filter((m) => m.lag > 0).length,
        members,
        gateways: st.gateways.map((g) => ({ ...g })),
      };
    },
  );

  app.post<{ Params: { sgId: string } }>(
    `${API}/service-groups/:sgId/rekey`,
    {
      schema: {
        tags: ['keys'],
        summary: "Force a Group Key update (reason 'operator')",
        params: S.sgParams,
        response: S.responses.rekey,
      },
    },
    async (req) => {
      await requireGroup(req.params.sgId);
      const { epoch } = await mutate(
        () => o.admin.rekey(req.params.sgId),
        (r) => ({ kind: 'key.update', sgId: req.params.sgId, epoch: r.epoch, reason: 'operator' }),
      );
      return { sgId: req.params.sgId, epoch };
    },
  );

  // ------------------------------------------------------------------ audit

  app.get<{ Querystring: { sgId?: string; action?: string; afterSeq?: string; limit?: string } }>(
    `${API}/audit`,
    {
      schema: {
        tags: ['audit'],
        summary: 'Audit log of key operations and membership changes (append-only), oldest first, paged',
        querystring: S.auditQuery,
        response: S.responses.audit,
      },
    },
    async (req) => {
      const q = req.query;
      const page = await o.store.listAudit({
        ...(q.sgId !== undefined ? { sgId: q.sgId } : {}),
        ...(q.action !== undefined ? { action: q.action } : {}),
        ...(q.afterSeq !== undefined ? { afterSeq: Number(q.afterSeq) } : {}),
        ...(q.limit !== undefined ? { limit: Number(q.limit) } : {}),
      });
      return { entries: page.entries.map((e) => ({ ...e })), nextAfterSeq: page.nextAfterSeq };
    },
  );

  // ------------------------------------------------------------------ live events (SSE)

  registerEventStream(app, feed, {
    maxStreams: o.maxEventStreams ?? ADMIN_DEFAULTS.maxEventStreams,
    keepAliveMs: o.keepAliveMs ?? ADMIN_DEFAULTS.keepAliveMs,
  });

  // ------------------------------------------------------------------ metrics, OpenAPI, console

  app.get(
    '/metrics',
    {
      config: { public: o.publicMetrics === true },
      schema: {
        tags: ['observability'],
        summary: `Prometheus metrics (text exposition format)${o.publicMetrics ? '' : '; bearer token'}`,
        produces: ['text/plain'],
        response: { 200: { type: 'string' } },
        ...(o.publicMetrics ? { security: [] } : {}),
      },
    },
    async (_req, reply) => {
      await refreshGauges();
      const text = await o.metrics.text();
      return reply.header('content-type', o.metrics.contentType).send(text);
    },
  );

  /** Gauges that the store can answer at scrape time (groups, members, lagging members). */
  async function refreshGauges(): Promise<void> {
    const groups = await o.store.listGroups();
    let members = 0;
    let lagging = 0;
    for (const g of groups) {
      const st = await o.store.deliveryStatus(g.sgId);
      members += st.members.length;
      lagging += st.members.filter((m) => m.lag > 0).length;
    }
    o.metrics.setGroups(groups.length);
    o.metrics.setMembers(members);
    o.metrics.setLagging(lagging);
  }

  // ------------------------------------------------------------------ health (public, no data)

  app.get(
    '/healthz',
    {
      config: PUBLIC,
      schema: {
        tags: ['observability'],
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
        summary: 'Readiness: the store answers a lookup (no token); 503 NOT_READY otherwise',
        security: [],
        response: S.responses.readyz,
      },
    },
    async (req, reply) => {
      reply.header('cache-control', 'no-store');
      try {
        await o.store.getGroup(READY_PROBE_SG);
      } catch (err) {
        req.log.warn({ err }, 'readiness probe: store unavailable');
        const e = httpError(503, 'NOT_READY', 'store unavailable');
        return reply.code(503).send(e.body);
      }
      return reply.send({ status: 'ready' });
    },
  );

  registerOpenApiRoute(app);
  registerConsoleRoutes(app, consoleFiles);

  return app;
}
