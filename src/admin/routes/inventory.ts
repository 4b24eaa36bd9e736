/** PN inventory: Personal Networks, PNEs and PN Gateways, as the store last saw them. */
import type { FastifyInstance } from 'fastify';
import * as S from '../schemas.js';
import { API, type RouteContext } from './context.js';

export function registerInventoryRoutes(app: FastifyInstance, { store }: RouteContext): void {
  app.get(
    `${API}/pns`,
    {
      schema: {
        tags: ['inventory'],
        operationId: 'listPersonalNetworks',
        summary: 'Personal Networks: each GW with its PNEs',
        response: S.responses.pns,
      },
    },
    async () =>
      (await store.listPns()).map((pn) => ({
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
        operationId: 'listPnes',
        summary: 'All known PNEs, attached or detached',
        response: S.responses.pnes,
      },
    },
    async () => {
      const pns = await store.listPns();
      const detached = await store.listDetachedPnes();
      return [...pns.flatMap((pn) => pn.pnes), ...detached].map((p) => ({ ...p, media: [...p.media] }));
    },
  );

  app.get(
    `${API}/gateways`,
    {
      schema: {
        tags: ['inventory'],
        operationId: 'listGateways',
        summary: 'PN Gateways (online, last seen)',
        response: S.responses.gateways,
      },
    },
    async () =>
      (await store.listPns()).map((pn) => ({
        gwId: pn.gwId,
        online: pn.online,
        registeredAt: pn.registeredAt,
        lastSeen: pn.lastSeen,
        pneCount: pn.pnes.length,
      })),
  );
}
