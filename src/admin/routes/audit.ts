/** The audit log of key operations and membership changes (append-only), paged by sequence number. */
import type { FastifyInstance } from 'fastify';
import * as S from '../schemas.js';
import { API, type RouteContext } from './context.js';

export function registerAuditRoutes(app: FastifyInstance, { store }: RouteContext): void {
  app.get<{ Querystring: { sgId?: string; action?: string; afterSeq?: string; limit?: string } }>(
    `${API}/audit`,
    {
      schema: {
        tags: ['audit'],
        operationId: 'listAuditEntries',
        summary: 'Audit log of key operations and membership changes (append-only), oldest first, paged',
        querystring: S.auditQuery,
        response: S.responses.audit,
      },
    },
    async (req) => {
      const q = req.query;
      // No type coercion: the query schema admits digit strings, converted here.
      const page = await store.listAudit({
        ...(q.sgId !== undefined ? { sgId: q.sgId } : {}),
        ...(q.action !== undefined ? { action: q.action } : {}),
        ...(q.afterSeq !== undefined ? { afterSeq: Number(q.afterSeq) } : {}),
        ...(q.limit !== undefined ? { limit: Number(q.limit) } : {}),
      });
      return { entries: page.entries.map((e) => ({ ...e })), nextAfterSeq: page.nextAfterSeq };
    },
  );
}
