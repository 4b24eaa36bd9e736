/** Members of a Service Group: list with delivery state, add one or a batch, remove. */
import type { FastifyInstance } from 'fastify';
import * as S from '../schemas.js';
import { API, type RouteContext } from './context.js';
import { memberStates, normPne, requireGroup, statusOf } from './views.js';

export function registerMemberRoutes(app: FastifyInstance, ctx: RouteContext): void {
  registerMembership(app, ctx);
  registerJoins(app, ctx);
  registerRemoval(app, ctx);
}

/** `GET /service-groups/:sgId/members`: each member's key delivery state. */
function registerMembership(app: FastifyInstance, { store }: RouteContext): void {
  app.get<{ Params: { sgId: string } }>(
    `${API}/service-groups/:sgId/members`,
    {
      schema: {
        tags: ['service-groups'],
        operationId: 'listMembers',
        summary: 'Members with their key delivery state',
        params: S.sgParams,
        response: S.responses.members,
      },
    },
    async (req) => {
      await requireGroup(store, req.params.sgId);
      return memberStates(store, req.params.sgId, await statusOf(store, req.params.sgId));
    },
  );
}

/** Adding one member, or a batch for the price of one Group Key update. */
function registerJoins(app: FastifyInstance, { store, adminFor, mutate }: RouteContext): void {
  app.post<{ Params: { sgId: string }; Body: { pneId: string } }>(
    `${API}/service-groups/:sgId/members`,
    {
      schema: {
        tags: ['service-groups'],
        operationId: 'addMember',
        summary:
          'Add a member (with update on join, the Group Key is updated and the member gets only the new one)',
        params: S.sgParams,
        body: S.addMemberBody,
        response: S.responses.memberAdded,
      },
    },
    async (req, reply) => {
      await requireGroup(store, req.params.sgId);
      const pneId = normPne(req.body.pneId);
      await mutate(
        () => adminFor(req).addMember(req.params.sgId, pneId),
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
        operationId: 'addMembers',
        summary: 'Add several members at once (with update on join: one Group Key update for the batch)',
        params: S.sgParams,
        body: S.addMembersBody,
        response: S.responses.membersAdded,
      },
    },
    async (req, reply) => {
      await requireGroup(store, req.params.sgId);
      const pneIds = [...new Set(req.body.pneIds.map(normPne))];
      await mutate(
        () => adminFor(req).addMembers(req.params.sgId, pneIds),
        () => ({ kind: 'member.add', sgId: req.params.sgId }),
      );
      return reply.code(201).send({ sgId: req.params.sgId, pneIds });
    },
  );
}

function registerRemoval(app: FastifyInstance, { store, adminFor, mutate }: RouteContext): void {
  app.delete<{ Params: { sgId: string; pneId: string } }>(
    `${API}/service-groups/:sgId/members/:pneId`,
    {
      schema: {
        tags: ['service-groups'],
        operationId: 'removeMember',
        summary: 'Remove a member (the Group Key is updated at once, without grace)',
        params: S.memberParams,
        response: S.responses.noContent,
      },
    },
    async (req, reply) => {
      await requireGroup(store, req.params.sgId);
      const pneId = normPne(req.params.pneId);
      await mutate(
        () => adminFor(req).removeMember(req.params.sgId, pneId),
        () => ({ kind: 'member.remove', sgId: req.params.sgId, pneId }),
      );
      return reply.code(204).send();
    },
  );
}
