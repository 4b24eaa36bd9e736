/**
 * Errors that do not come from a route handler get the API's envelope `{error:{code,message,field?}}` and never
 * echo the request (docs/operator.md, "Validation and errors"): the router's own errors (`BAD_URL`,
 * `URI_TOO_LONG`), requests node's HTTP parser refuses (`MALFORMED`, `HEADERS_TOO_LARGE`, `REQUEST_TIMEOUT`),
 * body errors and unknown routes. The mapping of codes is errors.ts; this is where fastify hands them over.
 */
import type { Socket } from 'node:net';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { SECURITY_HEADERS } from './auth.js';
import { clientErrorReply, httpError, toHttpError } from './errors.js';

/**
 * fastify `frameworkErrors`: the router's errors (bad percent-encoding, too-long parameter). They come before
 * the onRequest hook, so the security headers are set here; fastify's own reply would echo the path.
 */
export function routerErrors(err: unknown, req: FastifyRequest, reply: FastifyReply) {
  const e = toHttpError(err);
  req.log.info({ code: e.body.error.code }, 'admin request rejected by the router');
  return reply.headers(SECURITY_HEADERS).header('cache-control', 'no-store').code(e.status).send(e.body);
}

/** fastify `clientErrorHandler`: requests node's HTTP parser refuses (bad request line, header overflow, timeout). */
export function parserErrors(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  if (socket.writable) socket.end(clientErrorReply(err.code));
  else socket.destroy();
}

/** The app's error handler: whatever a route or fastify's body parsing throws, as a safe reply. */
export function errorHandler(err: FastifyError, req: FastifyRequest, reply: FastifyReply) {
  const e = toHttpError(err);
  if (e.status >= 500) req.log.error({ err }, 'admin request failed');
  else req.log.info({ code: e.body.error.code, field: e.body.error.field }, 'admin request rejected');
  return reply.code(e.status).send(e.body);
}

/** No route matched (reached only with the token: the not-found handler is not public). */
export function notFoundHandler(_req: FastifyRequest, reply: FastifyReply) {
  const e = httpError(404, 'NOT_FOUND', 'no such route');
  return reply.code(404).send(e.body);
}
