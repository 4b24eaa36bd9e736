/**
 * Named admin tokens with scopes (docs/operator.md "Admin tokens"): create (the token is shown once), list,
 * revoke. Only a token of scope `admin` may manage them; every change is audited with its actor.
 */
import type { FastifyInstance } from 'fastify';
import type { AdminScope } from '../../store/store.js';
import { ADMIN_SCOPE, ROOT_TOKEN_NAME } from '../auth.js';
import { ApiError } from '../errors.js';
import * as S from '../schemas.js';
import { API, type RouteContext } from './context.js';

export function registerAdminTokenRoutes(app: FastifyInstance, { adminFor }: RouteContext): void {
  app.get(
    `${API}/admin-tokens`,
    {
      config: ADMIN_SCOPE,
      schema: {
        tags: ['admin-tokens'],
        operationId: 'listAdminTokens',
        summary: 'Admin tokens (names, scopes, revocation; never the tokens)',
        response: S.adminTokenResponses.list,
      },
    },
    async (req) => adminFor(req).listAdminTokens(),
  );

  app.post<{ Body: { name: string; scope: AdminScope } }>(
    `${API}/admin-tokens`,
    {
      config: ADMIN_SCOPE,
      schema: {
        tags: ['admin-tokens'],
        operationId: 'createAdminToken',
        summary: 'Create a named admin token with a scope (shown once; stored as a hash)',
        body: S.createAdminTokenBody,
        response: S.adminTokenResponses.created,
      },
    },
    async (req, reply) => {
      // `root` is the data directory's token: a second one of that name would make the audit ambiguous.
      if (req.body.name === ROOT_TOKEN_NAME)
        throw new ApiError(409, 'CONFLICT', 'the name root is the bootstrap token', 'name');
      const token = await adminFor(req).createAdminToken(req.body.name, req.body.scope);
      return reply.code(201).send({ name: req.body.name, scope: req.body.scope, token });
    },
  );

  app.post<{ Params: { name: string } }>(
    `${API}/admin-tokens/:name/revoke`,
    {
      config: ADMIN_SCOPE,
      schema: {
        tags: ['admin-tokens'],
        operationId: 'revokeAdminToken',
        summary: 'Revoke an admin token: refused from the next request on, on every node',
        params: S.adminTokenParams,
        response: S.adminTokenResponses.revoked,
      },
    },
    async (req) => adminFor(req).revokeAdminToken(req.params.name),
  );
}
