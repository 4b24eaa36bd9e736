/** Service Groups: list, create, read, change policy, delete. Members are members.ts. */
import type { FastifyInstance } from 'fastify';
import * as S from '../schemas.js';
import { API, type RouteContext } from './context.js';
import { groupView, requireGroup } from './views.js';

type DeliveryPolicy = { broadcast: boolean; broadcastThreshold: number; ackTimeoutMs: number };

interface CreateGroupBody {
  name: string;
  joinPolicy?: 'open' | 'invite';
  suite?: 'aes-256-gcm' | 'chacha20-poly1305';
  sourceAuth?: boolean;
  updateOnJoin?: boolean;
  rekeyIntervalSec?: number;
  members?: string[];
  deliveryPolicy?: DeliveryPolicy;
}

interface UpdatePolicyBody {
  joinPolicy?: 'open' | 'invite';
  rekeyIntervalSec?: number | null;
  sourceAuth?: boolean;
  updateOnJoin?: boolean;
  deliveryPolicy?: DeliveryPolicy | null;
}

export function registerServiceGroupRoutes(app: FastifyInstance, ctx: RouteContext): void {
  registerCollection(app, ctx);
  registerItem(app, ctx);
}

/** `/service-groups`: list and create. */
function registerCollection(app: FastifyInstance, { store, adminFor, mutate }: RouteContext): void {
  app.get(
    `${API}/service-groups`,
    {
      schema: {
        tags: ['service-groups'],
        operationId: 'listServiceGroups',
        summary: 'List Service Groups',
        response: S.responses.groups,
      },
    },
    async () => {
      const out = [];
      for (const g of await store.listGroups()) out.push(await groupView(store, g));
      return out;
    },
  );

  app.post<{ Body: CreateGroupBody }>(
    `${API}/service-groups`,
    {
      schema: {
        tags: ['service-groups'],
        operationId: 'createServiceGroup',
        summary: 'Create a Service Group (its first Group Key is created and delivered at once)',
        body: S.createGroupBody,
        response: S.responses.groupCreated,
      },
    },
    async (req, reply) => {
      const { sgId } = await mutate(
        () => adminFor(req).createGroup({ ...req.body }),
        (r) => ({ kind: 'sg.create', sgId: r.sgId, epoch: r.epoch }),
      );
      const g = await requireGroup(store, sgId);
      return reply.code(201).send(await groupView(store, g));
    },
  );
}

/** `/service-groups/:sgId`: read, change policy, delete. */
function registerItem(app: FastifyInstance, { store, adminFor, mutate }: RouteContext): void {
  app.get<{ Params: { sgId: string } }>(
    `${API}/service-groups/:sgId`,
    {
      schema: {
        tags: ['service-groups'],
        operationId: 'getServiceGroup',
        summary: 'One Service Group with its policy and members',
        params: S.sgParams,
        response: S.responses.group,
      },
    },
    async (req) => groupView(store, await requireGroup(store, req.params.sgId)),
  );

  app.patch<{ Params: { sgId: string }; Body: UpdatePolicyBody }>(
    `${API}/service-groups/:sgId`,
    {
      schema: {
        tags: ['service-groups'],
        operationId: 'updateServiceGroupPolicy',
        summary:
          'Change a Service Group policy: join mode, update on join, periodic update interval, source authentication',
        params: S.sgParams,
        body: S.updatePolicyBody,
        response: S.responses.groupUpdated,
      },
    },
    async (req) => {
      await requireGroup(store, req.params.sgId);
      await mutate(
        () => adminFor(req).updatePolicy(req.params.sgId, { ...req.body }),
        () => ({ kind: 'sg.policy', sgId: req.params.sgId }),
      );
      return groupView(store, await requireGroup(store, req.params.sgId));
    },
  );

  app.delete<{ Params: { sgId: string } }>(
    `${API}/service-groups/:sgId`,
    {
      schema: {
        tags: ['service-groups'],
        operationId: 'deleteServiceGroup',
        summary: 'Delete a Service Group (its keys are deleted; the id is retired)',
        params: S.sgParams,
        response: S.responses.noContent,
      },
    },
    async (req, reply) => {
      await requireGroup(store, req.params.sgId);
      await mutate(
        () => adminFor(req).deleteGroup(req.params.sgId),
        () => ({ kind: 'sg.delete', sgId: req.params.sgId }),
      );
      return reply.code(204).send();
    },
  );
}
