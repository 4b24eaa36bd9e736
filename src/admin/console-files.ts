/**
 * The web console's static files (docs/operator.md): three files read once at start, served public (they hold
 * no data; the page asks for the token) with a CSP that allows only same-origin script, style and fetch.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { PUBLIC } from './auth.js';
import { httpError } from './errors.js';

const CONSOLE_FILES: Readonly<Record<string, string>> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
};
const CONSOLE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** Reads the console files from `dir`, or from `console/` next to this module; an empty map if absent. */
export function loadConsole(dir: string | undefined): Map<string, Buffer> {
  const candidates = dir
    ? [dir]
    : [
        fileURLToPath(new URL('./console/', import.meta.url)),
        // Compiled to dist/admin/: the static files stay in src/admin/console.
        fileURLToPath(new URL('../../src/admin/console/', import.meta.url)),
      ];
  for (const d of candidates) {
    try {
      const files = new Map<string, Buffer>();
      for (const name of Object.keys(CONSOLE_FILES)) files.set(name, readFileSync(`${d}/${name}`));
      return files;
    } catch {}
  }
  return new Map();
}

/**
 * `/` and `/console` redirect to `/console/`; `/console/` is index.html; `/console/:file` only the files above
 * (the params schema enumerates them, so no other name reaches the handler). All hidden from the OpenAPI document.
 */
export function registerConsoleRoutes(app: FastifyInstance, consoleFiles: Map<string, Buffer>): void {
  const sendConsole = (reply: FastifyReply, name: string) => {
    const body = consoleFiles.get(name);
    const type = CONSOLE_FILES[name];
    if (!body || !type) {
      const e = httpError(404, 'NOT_FOUND', 'no such file');
      return reply.code(404).send(e.body);
    }
    return reply
      .header('content-type', type)
      .header('content-security-policy', CONSOLE_CSP)
      .header('cache-control', 'no-cache')
      .send(body);
  };
  app.get('/', { config: PUBLIC, schema: { hide: true } }, async (_req, reply) =>
    reply.redirect('/console/'),
  );
  app.get('/console', { config: PUBLIC, schema: { hide: true } }, async (_req, reply) =>
    reply.redirect('/console/'),
  );
  app.get('/console/', { config: PUBLIC, schema: { hide: true } }, async (_req, reply) =>
    sendConsole(reply, 'index.html'),
  );
  app.get<{ Params: { file: string } }>(
    '/console/:file',
    {
      config: PUBLIC,
      schema: {
        hide: true,
        params: {
          type: 'object',
          additionalProperties: false,
          properties: { file: { type: 'string', enum: Object.keys(CONSOLE_FILES) } },
          required: ['file'],
        },
      },
    },
    async (req, reply) => sendConsole(reply, req.params.file),
  );
}
