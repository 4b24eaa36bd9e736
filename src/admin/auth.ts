/**
 * Authentication of the admin app (docs/operator.md, "Authentication"): decided on the route the router matched,
 * never on the URL string, and denied by default.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { constantTimeEqual } from '../core/crypto/bytes.js';
import { ADMIN_DEFAULTS } from './defaults.js';
import { httpError } from './errors.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * Served without the admin token (docs/operator.md, "Authentication"). Any route without `public: true`,
     * and the not-found handler, needs it: deny by default.
     */
    public?: boolean;
  }
}

/** Route config of the routes served without the token. */
export const PUBLIC = { public: true } as const;

/** Headers of every reply, public or not, including the router's error replies (framework-errors.ts). */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

/**
 * The `onRequest` hook that requires `Authorization: Bearer <token>` on every route not declared public.
 * Throws at once on a token too short to be a secret, before any app exists.
 *
 * onRequest runs after routing: `req.routeOptions` is the matched route (or the not-found handler, whose
 * config has no `public`). The decision never looks at `req.url`.
 */
export function bearerAuth(token: string): (req: FastifyRequest, reply: FastifyReply) => Promise<unknown> {
  const expectedAuth = Buffer.from(`Bearer ${token}`);
  if (token.length < ADMIN_DEFAULTS.minTokenLength) {
    throw new TypeError(`admin token must be at least ${ADMIN_DEFAULTS.minTokenLength} characters`);
  }
  return async (req, reply) => {
    reply.headers(SECURITY_HEADERS);
    if (req.routeOptions.config?.public === true) return;
    reply.header('cache-control', 'no-store');
    const given = Buffer.from(req.headers.authorization ?? '');
    if (!constantTimeEqual(given, expectedAuth)) {
      req.log.warn({ route: req.routeOptions.url ?? null }, 'admin request refused: bad or missing token');
      reply.header('www-authenticate', 'Bearer realm="cpns-admin"');
      const e = httpError(401, 'UNAUTHORIZED', 'missing or invalid bearer token');
      return reply.code(e.status).send(e.body);
    }
  };
}
