/** The audit log of key operations and membership changes (append-only), paged by sequence number. */
import type { FastifyInstance } from 'fastify';
import * as S from '../schemas.js';
import { API, type RouteContext } from './context.js';

export function registerAuditRoutes(app: FastifyInstance, { store }: RouteContext): void {
  app.get<{
    Querystring: {
      sgId?: string;
      action?: string;
      actor?: string;
      subject?: string;
      order?: 'asc' | 'desc';
      afterSeq?: string;
      beforeSeq?: string;
      limit?: string;
    };
  }>(
    `${API}/audit`,
    {
      schema: {
        tags: ['audit'],
        operationId: 'listAuditEntries',
        summary:
          'Audit log of key operations and membership changes (append-only), oldest or newest first, paged, ' +
          'filtered by Service Group, action, actor and subject',
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
        ...(q.actor !== undefined ? { actor: q.actor } : {}),
        ...(q.subject !== undefined ? { subject: q.subject } : {}),
        ...(q.order !== undefined ? { order: q.order } : {}),
        ...(q.afterSeq !== undefined ? { afterSeq: Number(q.afterSeq) } : {}),
        ...(q.beforeSeq !== undefined ? { beforeSeq: Number(q.beforeSeq) } : {}),
        ...(q.limit !== undefined ? { limit: Number(q.limit) } : {}),
      });
      return {
        entries: page.entries.map((e) => ({ ...e })),
        nextAfterSeq: page.nextAfterSeq,
        nextBeforeSeq: page.nextBeforeSeq,
      };
    },
  );
}
