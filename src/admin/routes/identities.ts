/** Enrolled identities (GWs and PNEs), one-time enrollment tokens, and revocation. */
import type { FastifyInstance } from 'fastify';
import type { Identity } from '../../store/store.js';
import { ADMIN_DEFAULTS } from '../defaults.js';
import { ApiError } from '../errors.js';
import * as S from '../schemas.js';
import { API, type RouteContext } from './context.js';

/** An identity as the API lists it: its certificate is named by its serial, the PEM is not returned. */
const wireIdentity = (i: Identity) => ({
  id: i.id,
  role: i.role,
  certSerial: i.certSerial,
  createdAt: i.createdAt,
  revokedAt: i.revokedAt,
});

export function registerIdentityRoutes(
  app: FastifyInstance,
  { store, adminFor, mutate }: RouteContext,
): void {
  app.get<{ Querystring: { role?: 'gw' | 'pne' } }>(
    `${API}/identities`,
    {
      schema: {
        tags: ['identities'],
        operationId: 'listIdentities',
        summary: 'Enrolled identities (GWs and PNEs) and their revocation state',
        querystring: S.identitiesQuery,
        response: S.responses.identities,
      },
    },
    async (req) => (await store.listIdentities(req.query.role)).map(wireIdentity),
  );

  app.post<{ Body: { role: 'gw' | 'pne'; ttlSec?: number; label?: string } }>(
    `${API}/enrollment-tokens`,
    {
      schema: {
        tags: ['identities'],
        operationId: 'createEnrollmentToken',
        summary: 'Create a one-time enrollment token for a GW or a PNE, optionally labelled',
        body: S.createTokenBody,
        response: S.responses.token,
      },
    },
    async (req, reply) => {
      const ttlSec = req.body.ttlSec ?? ADMIN_DEFAULTS.enrollmentTokenTtlSec;
      const label = req.body.label ?? null;
      const token = await adminFor(req).createToken(req.body.role, ttlSec, label ?? undefined);
      return reply
        .code(201)
        .send({ token, role: req.body.role, label, expiresAt: Date.now() + ttlSec * 1000 });
    },
  );

  app.post<{ Params: { id: string } }>(
    `${API}/identities/:id/revoke`,
    {
      schema: {
        tags: ['identities'],
        operationId: 'revokeIdentity',
        summary: 'Revoke a GW or PNE identity (its sessions close; its Service Groups get a new key)',
        params: S.identityParams,
        response: S.responses.revoke,
      },
    },
    async (req) => {
      await mutate(
        () => adminFor(req).revoke(req.params.id),
        () => ({ kind: 'identity.revoke', identity: req.params.id }),
      );
      const i = await store.getIdentity(req.params.id);
      if (!i) throw new ApiError(404, 'NOT_FOUND', 'no such identity', 'id');
      return wireIdentity(i);
    },
  );
}
