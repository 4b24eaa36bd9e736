/**
 * Error replies of the admin API: `{ error: { code, message, field? } }` with a stable `code` and the HTTP status
 * it maps to. Never a stack trace, never an internal message: unknown errors become 500 INTERNAL "internal error".
 */
import { CodedError, isCodedError } from '../core/errors.js';

export interface ErrorBody {
  error: { code: string; message: string; field?: string };
}

export interface HttpError {
  status: number;
  body: ErrorBody;
}

/** Core and store codes -> HTTP status (docs/errors.md). Codes not listed: 400 (the request's fault). */
const STATUS: Readonly<Record<string, number>> = {
  NOT_FOUND: 404,
  NOT_MEMBER: 404,
  FORBIDDEN: 403,
  CONFLICT: 409,
  ALREADY_MEMBER: 409,
  GROUP_RETIRED: 409,
  REVOKED: 409,
  EPOCH_EXHAUSTED: 409,
  BUSY: 503,
  UNAVAILABLE: 503,
  CLOSED: 503,
};

/** Store failures whose details are for the server log only. */
const INTERNAL_STORE_CODES: ReadonlySet<string> = new Set([
  'STORE_CORRUPT',
  'MASTER_KEY_MISMATCH',
  'MASTER_KEY_INVALID',
  'MASTER_KEY_PERMISSIONS',
  'SCHEMA_TOO_NEW',
  'MIGRATION_MISMATCH',
]);

const FASTIFY_CODES: Readonly<Record<string, { status: number; code: string; message: string }>> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: {
    status: 415,
    code: 'UNSUPPORTED_MEDIA_TYPE',
    message: 'body must be application/json',
  },
  FST_ERR_CTP_BODY_TOO_LARGE: { status: 413, code: 'TOO_LARGE', message: 'body too large' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { status: 400, code: 'MALFORMED', message: 'empty JSON body' },
  FST_ERR_CTP_INVALID_JSON_BODY: { status: 400, code: 'MALFORMED', message: 'body is not valid JSON' },
  // Router errors (fastify `frameworkErrors`): fastify's own replies would echo the offending path.
  FST_ERR_BAD_URL: { status: 400, code: 'BAD_URL', message: 'malformed percent-encoding in the path' },
  FST_ERR_MAX_PARAM_LENGTH: { status: 414, code: 'URI_TOO_LONG', message: 'path parameter too long' },
};

/**
 * The raw HTTP/1.1 reply to a request node's parser refused before fastify saw it (fastify
 * `clientErrorHandler`): same envelope, nothing of the request echoed.
 */
export function clientErrorReply(errCode: unknown): string {
  const e =
    errCode === 'HPE_HEADER_OVERFLOW'
      ? httpError(431, 'HEADERS_TOO_LARGE', 'request headers too large')
      : errCode === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? httpError(408, 'REQUEST_TIMEOUT', 'request timeout')
        : httpError(400, 'MALFORMED', 'malformed request');
  const body = JSON.stringify(e.body);
  const reason =
    e.status === 431
      ? 'Request Header Fields Too Large'
      : e.status === 408
        ? 'Request Timeout'
        : 'Bad Request';
  return (
    `HTTP/1.1 ${e.status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n${body}`
  );
}

export function httpError(status: number, code: string, message: string, field?: string): HttpError {
  return { status, body: { error: field === undefined ? { code, message } : { code, message, field } } };
}

/** An error a route throws on purpose, with its status and stable code (the admin family, docs/errors.md). */
export class ApiError extends CodedError {
  readonly family = 'admin';
  readonly status: number;

  constructor(status: number, code: string, message: string, field?: string) {
    super(code, message, field);
    this.name = 'ApiError';
    this.status = status;
  }
}

const clip = (s: string): string => (s.length > 64 ? `${s.slice(0, 64)}…` : s);

interface AjvIssue {
  keyword?: string;
  instancePath?: string;
  message?: string;
  params?: { missingProperty?: string; additionalProperty?: string };
}

function schemaError(err: { validation: AjvIssue[]; validationContext?: string }): HttpError {
  const issue = err.validation[0] ?? {};
  const where = err.validationContext ?? 'body';
  const path = (issue.instancePath ?? '').replace(/^\//, '').replaceAll('/', '.');
  const prop = issue.params?.missingProperty ?? issue.params?.additionalProperty;
  const field = clip([path, prop].filter((p) => p !== undefined && p !== '').join('.') || where);
  const what =
    issue.keyword === 'additionalProperties'
      ? 'unknown field'
      : issue.keyword === 'required'
        ? 'missing field'
        : `invalid field: ${issue.message ?? 'does not match the schema'}`;
  return httpError(400, 'SCHEMA', `${where}: ${what}`, field);
}

/**
 * The admin API's one code -> HTTP status mapping for the product's errors, by family (docs/errors.md):
 * a route's ApiError keeps its status; core and store codes go through STATUS; transport and CLI errors never
 * describe a request's input, so they are masked like anything unknown.
 */
function codedHttpError(e: CodedError): HttpError {
  if (e instanceof ApiError) return httpError(e.status, e.code, e.message, e.field);
  const shown = e.family === 'core' || (e.family === 'store' && !INTERNAL_STORE_CODES.has(e.code));
  if (!shown) return httpError(500, 'INTERNAL', 'internal error');
  return httpError(STATUS[e.code] ?? 400, e.code, e.message, e.field);
}

/** Maps anything thrown by a route (or by fastify itself) to a safe reply. */
export function toHttpError(e: unknown): HttpError {
  const err = e as {
    validation?: AjvIssue[];
    validationContext?: string;
    code?: unknown;
    statusCode?: unknown;
  };
  if (isCodedError(e)) return codedHttpError(e);
  if (Array.isArray(err?.validation)) return schemaError(err as { validation: AjvIssue[] });
  if (typeof err?.code === 'string') {
    const f = FASTIFY_CODES[err.code];
    if (f) return httpError(f.status, f.code, f.message);
    if (
      err.code.startsWith('FST_') &&
      typeof err.statusCode === 'number' &&
      err.statusCode >= 400 &&
      err.statusCode < 500
    ) {
      return httpError(400, 'MALFORMED', 'malformed request');
    }
  }
  // JSON.parse errors from the body parser carry statusCode 400 without a FST_ code in some versions.
  if (e instanceof SyntaxError && (err as { statusCode?: unknown }).statusCode === 400) {
    return httpError(400, 'MALFORMED', 'body is not valid JSON');
  }
  return httpError(500, 'INTERNAL', 'internal error');
}
