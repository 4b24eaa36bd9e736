/**
 * Admin REST API, SSE event stream, Prometheus endpoint and web console of the CPNS Server (docs/operator.md).
 * This module only composes the app; each concern has its module:
 *
 * - auth.ts: authentication is decided on the route the router matched, never on the URL string: every route,
 *   and the not-found handler, needs the bearer token (constant-time compare) unless its route config says
 *   `{ public: true }` (console files, `/openapi.json`, `/healthz`, `/readyz`, `/metrics` with `publicMetrics`).
 * - routes/: `/api/v1/...`, one module per resource. JSON schemas (schemas.ts) on every body / query / params
 *   (unknown fields refused), errors `{error:{code,message,field?}}` with stable codes and no stack traces.
 *   Mutations go through the server's `ServerAdmin` only; reads come from the store. Group Key bytes are never
 *   read here: only key metadata (`listKeyEpochs`) and delivery status, and responses are serialized by schema.
 * - framework-errors.ts: framework errors (bad URL encoding, too-long path parameter, unparsable request) use
 *   the same envelope and never echo the request.
 * - events.ts: `/api/v1/events`, Server-Sent Events; same bearer header (the console reads the stream with
 *   fetch(), so the token never goes into a URL or a cookie).
 * - openapi.ts, console-files.ts, routes/observability.ts: `/openapi.json` (generated from the route schemas),
 *   `/console/`, `/metrics`, `/healthz`, `/readyz`.
 * - defaults.ts: the limits (body size, parameter length, streams, keep-alive).
 */

import { randomUUID } from 'node:crypto';
import fastify, { type FastifyInstance } from 'fastify';
import { bearerAuth, ROOT_TOKEN_NAME } from './auth.js';
import { loadConsole, registerConsoleRoutes } from './console-files.js';
import { ADMIN_DEFAULTS } from './defaults.js';
import { createChangeFeed, registerEventStream } from './events.js';
import { errorHandler, notFoundHandler, parserErrors, routerErrors } from './framework-errors.js';
import { registerOpenApi, registerOpenApiRoute } from './openapi.js';
import { registerAdminTokenRoutes } from './routes/admin-tokens.js';
import { registerAuditRoutes } from './routes/audit.js';
import type { RouteContext } from './routes/context.js';
import { registerIdentityRoutes } from './routes/identities.js';
import { registerInventoryRoutes } from './routes/inventory.js';
import { registerKeyRoutes } from './routes/keys.js';
import { registerMemberRoutes } from './routes/members.js';
import { registerObservabilityRoutes } from './routes/observability.js';
import { registerServiceGroupRoutes } from './routes/service-groups.js';
import * as S from './schemas.js';
import type { AdminAppOptions } from './types.js';

/** Builds the admin app (not listening). The caller listens: `await app.listen({ host, port })`. */
export async function buildAdminApp(o: AdminAppOptions): Promise<FastifyInstance> {
  const requireToken = bearerAuth({ token: o.auth.token, store: o.store });
  const consoleFiles = loadConsole(o.consoleDir);
  const app = createFastify(o);

  // JSON only: any other body type is 415 UNSUPPORTED_MEDIA_TYPE.
  app.removeContentTypeParser('text/plain');
  for (const s of S.componentSchemas()) app.addSchema(s);
  await registerOpenApi(app);

  // The request id (a UUID, in every log line of the request and the x-request-id reply header) is the cause of
  // the key updates the request makes: their updateId (docs/operator.md "Following a key update"). `done` runs the
  // handler, so the handler runs inside the cause.
  app.addHook('onRequest', (req, reply, done) => {
    reply.header('x-request-id', req.id);
    done();
  });
  app.addHook('onRequest', requireToken);
  app.addHook('preHandler', (req, _reply, done) => o.admin.withCause(req.id, done));
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler(notFoundHandler);

  // Registered in this order, the routes appear in this order in the OpenAPI document.
  const feed = createChangeFeed(app, o.events);
  const ctx: RouteContext = {
    store: o.store,
    admin: o.admin,
    adminFor: (req) => o.admin.asOperator(req.principal?.name ?? ROOT_TOKEN_NAME),
    mutate: feed.mutate,
  };
  registerInventoryRoutes(app, ctx);
  registerIdentityRoutes(app, ctx);
  registerServiceGroupRoutes(app, ctx);
  registerMemberRoutes(app, ctx);
  registerKeyRoutes(app, ctx);
  registerAuditRoutes(app, ctx);
  registerAdminTokenRoutes(app, ctx);
  registerEventStream(app, feed, {
    maxStreams: o.maxEventStreams ?? ADMIN_DEFAULTS.maxEventStreams,
    keepAliveMs: o.keepAliveMs ?? ADMIN_DEFAULTS.keepAliveMs,
  });
  registerObservabilityRoutes(app, {
    store: o.store,
    metrics: o.metrics,
    publicMetrics: o.publicMetrics,
    bus: o.bus,
    readyTimeoutMs: o.readyTimeoutMs ?? ADMIN_DEFAULTS.readyTimeoutMs,
  });
  registerOpenApiRoute(app);
  registerConsoleRoutes(app, consoleFiles);
  return app;
}

/** The fastify instance: TLS, logger, limits, router options and the framework's error hooks. */
function createFastify(o: AdminAppOptions): FastifyInstance {
  return fastify({
    ...(o.https ? { https: { minVersion: 'TLSv1.3', ...o.https } } : {}),
    ...(o.logger ? { loggerInstance: o.logger } : { logger: false }),
    bodyLimit: ADMIN_DEFAULTS.bodyLimitBytes,
    // A UUID per request (never taken from the request's headers): logged, returned, and the updateId of the
    // key updates the request makes.
    genReqId: () => randomUUID(),
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
}
