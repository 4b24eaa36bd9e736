/** Group Key status (metadata and ack state, never key bytes) and forced key updates. */
import type { FastifyInstance } from 'fastify';
import * as S from '../schemas.js';
import { API, type RouteContext } from './context.js';
import { keyEpoch, memberStates, requireGroup, statusOf } from './views.js';

export function registerKeyRoutes(app: FastifyInstance, { store, adminFor, mutate }: RouteContext): void {
  app.get<{ Params: { sgId: string } }>(
    `${API}/service-groups/:sgId/key`,
    {
      schema: {
        tags: ['keys'],
        operationId: 'getKeyStatus',
        summary:
          'Group Key status: epochs (created, reason) and per-member / per-GW ack state; never key bytes',
        params: S.sgParams,
        response: S.responses.keyStatus,
      },
    },
    async (req) => {
      const sgId = req.params.sgId;
      await requireGroup(store, sgId);
      const [st, epochs] = await Promise.all([statusOf(store, sgId), store.listKeyEpochs(sgId)]);
      const members = await memberStates(store, sgId, st);
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
        operationId: 'rekeyServiceGroup',
        summary: "Force a Group Key update (reason 'operator')",
        params: S.sgParams,
        response: S.responses.rekey,
      },
    },
    async (req) => {
      await requireGroup(store, req.params.sgId);
      const { epoch } = await mutate(
        () => adminFor(req).rekey(req.params.sgId),
        (r) => ({ kind: 'key.update', sgId: req.params.sgId, epoch: r.epoch, reason: 'operator' }),
      );
      return { sgId: req.params.sgId, epoch };
    },
  );
}
