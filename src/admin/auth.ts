/**
 * Authentication and authorization of the admin app (docs/operator.md, "Authentication" and "Admin tokens"):
 * decided on the route the router matched, never on the URL string, and denied by default.
 *
 * Who may send a request: the holder of a bearer token. Either the data directory's `admin.token` (named `root`,
 * scope `admin`), or a named token created through the API, found by its SHA-256 and refused once revoked. What
 * the request may do: a route needs `read` (GET, HEAD), `operator` (every other method) or what its config says
 * (`admin`: managing admin tokens). The token's name is the audit actor of what it does (`operator:<name>`).
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { constantTimeEqual } from '../core/crypto/bytes.js';
import type { AdminScope, Store } from '../store/store.js';
import { hashToken } from '../store/token.js';
import { ADMIN_DEFAULTS } from './defaults.js';
import { httpError } from './errors.js';

/** Who is calling: the admin token's name and scope. */
export interface AdminPrincipal {
  readonly name: string;
  readonly scope: AdminScope;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * Served without the admin token (docs/operator.md, "Authentication"). Any route without `public: true`,
     * and the not-found handler, needs it: deny by default.
     */
    public?: boolean;
    /** The scope the route needs when not the method's default (read for GET/HEAD, operator otherwise). */
    scope?: AdminScope;
  }
  interface FastifyRequest {
    /** Set by the auth hook on every authenticated request. */
    principal?: AdminPrincipal;
  }
}

/** Route config of the routes served without the token. */
export const PUBLIC = { public: true } as const;

/** Route config of the routes that manage admin tokens. */
export const ADMIN_SCOPE = { scope: 'admin' } as const;

/** The name of the data directory's bootstrap token (`admin.token`). */
export const ROOT_TOKEN_NAME = 'root';

const RANK: Readonly<Record<AdminScope, number>> = { read: 0, operator: 1, admin: 2 };

/** Headers of every reply, public or not, including the router's error replies (framework-errors.ts). */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

/** The scope a request needs: the route's own, else by method (reads are `read`, anything else `operator`). */
export function requiredScope(method: string, config: { scope?: AdminScope } | undefined): AdminScope {
  if (config?.scope !== undefined) return config.scope;
  return method === 'GET' || method === 'HEAD' ? 'read' : 'operator';
}

export function scopeAllows(have: AdminScope, need: AdminScope): boolean {
  return RANK[have] >= RANK[need];
}

const TOKEN_RE = /^[A-Za-z0-9_-]+$/;

export interface AuthOptions {
  /** The bootstrap token (`admin.token`): scope admin, named `root`. */
  readonly token: string;
  /** Where named tokens are looked up by hash; without it only the bootstrap token is accepted. */
  readonly store?: Pick<Store, 'findAdminToken'>;
}

/**
 * The `onRequest` hook: `Authorization: Bearer <token>` on every route not declared public, and the scope the
 * route needs. Throws at once on a bootstrap token too short to be a secret, before any app exists.
 *
 * onRequest runs after routing: `req.routeOptions` is the matched route (or the not-found handler, whose
 * config has no `public`). The decision never looks at `req.url`.
 */
export function bearerAuth({
  token,
  store,
}: AuthOptions): (req: FastifyRequest, reply: FastifyReply) => Promise<unknown> {
  const expectedAuth = Buffer.from(`Bearer ${token}`);
  if (token.length < ADMIN_DEFAULTS.minTokenLength) {
    throw new TypeError(`admin token must be at least ${ADMIN_DEFAULTS.minTokenLength} characters`);
  }
  const root: AdminPrincipal = { name: ROOT_TOKEN_NAME, scope: 'admin' };

  async function authenticate(header: string | undefined): Promise<AdminPrincipal | undefined> {
    if (header === undefined) return undefined;
    const given = Buffer.from(header);
    if (constantTimeEqual(given, expectedAuth)) return root;
    if (store === undefined || !header.startsWith('Bearer ')) return undefined;
    const t = header.slice('Bearer '.length);
    // Bounded and of the generated alphabet before it is hashed or looked up.
    if (
      t.length < ADMIN_DEFAULTS.minTokenLength ||
      t.length > ADMIN_DEFAULTS.maxTokenLength ||
      !TOKEN_RE.test(t)
    )
      return undefined;
    // Looked up by SHA-256: the stored hash of a 256-bit random token leaks nothing a timing could use.
    const found = await store.findAdminToken(hashToken(t));
    if (found === undefined || found.revokedAt !== null) return undefined;
    return { name: found.name, scope: found.scope };
  }

  return async (req, reply) => {
    reply.headers(SECURITY_HEADERS);
    if (req.routeOptions.config?.public === true) return;
    reply.header('cache-control', 'no-store');
    const principal = await authenticate(req.headers.authorization);
    if (principal === undefined) {
      req.log.warn({ route: req.routeOptions.url ?? null }, 'admin request refused: bad or missing token');
      reply.header('www-authenticate', 'Bearer realm="cpns-admin"');
      const e = httpError(401, 'UNAUTHORIZED', 'missing or invalid bearer token');
      return reply.code(e.status).send(e.body);
    }
    const need = requiredScope(req.method, req.routeOptions.config);
    if (!scopeAllows(principal.scope, need)) {
      req.log.warn(
        { route: req.routeOptions.url ?? null, token: principal.name, scope: principal.scope, need },
        'admin request refused: token scope too narrow',
      );
      const e = httpError(403, 'INSUFFICIENT_SCOPE', `this request needs a token of scope ${need}`);
      return reply.code(e.status).send(e.body);
    }
    req.principal = principal;
  };
}
