import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { constantTimeEqual } from '../core/crypto/bytes.js';
import { CpnsError, ErrorCode } from '../core/errors.js';

/**
 * Minimal operator endpoint until the REST API of issue #5 exists: HTTPS (the CPNS Server's certificate) on
 * loopback, bearer token from `<dataDir>/admin.token` (0600). The `cpns admin` CLI is its only client.
 * Requests: POST /admin/<action> with a JSON body; replies JSON; errors `{error:{code,message}}` with stable codes.
 */
export interface AdminActions {
  createToken(role: 'gw' | 'pne', ttlSec?: number): Promise<string>;
  revoke(identity: string): Promise<void>;
  createGroup(o: {
    name: string;
    joinPolicy?: 'open' | 'invite';
    sourceAuth?: boolean;
    rekeyIntervalSec?: number;
    members?: string[];
  }): Promise<{ sgId: string; epoch: number }>;
  deleteGroup(sgId: string): Promise<void>;
  addMember(sgId: string, pne: string): Promise<void>;
  removeMember(sgId: string, pne: string): Promise<void>;
  rekey(sgId: string): Promise<{ epoch: number }>;
  listPns(): Promise<unknown>;
  listGroups(): Promise<unknown>;
  groupStatus(sgId: string): Promise<unknown>;
}

const MAX_BODY = 64 * 1024;

export function loadOrCreateAdminToken(dataDir: string): string {
  const path = join(dataDir, 'admin.token');
  if (existsSync(path)) return readFileSync(path, 'utf8').trim();
  const token = randomBytes(32).toString('base64url');
  writeFileSync(path, `${token}\n`, { mode: 0o600 });
  chmodSync(path, 0o600);
  return token;
}

type Body = Record<string, unknown>;
const str = (b: Body, k: string): string => {
  const v = b[k];
  if (typeof v !== 'string' || v.length === 0 || v.length > 200) {
    throw new CpnsError(ErrorCode.SCHEMA, 'missing or invalid field', k);
  }
  return v;
};
const optUint = (b: Body, k: string): number | undefined => {
  const v = b[k];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) {
    throw new CpnsError(ErrorCode.SCHEMA, 'invalid field', k);
  }
  return v;
};

export function adminRoutes(a: AdminActions): Record<string, (b: Body) => Promise<unknown>> {
  return {
    'token.create': async (b) => {
      const role = str(b, 'role');
      if (role !== 'gw' && role !== 'pne')
        throw new CpnsError(ErrorCode.SCHEMA, 'role must be gw or pne', 'role');
      return { token: await a.createToken(role, optUint(b, 'ttlSec')) };
    },
    revoke: async (b) => {
      await a.revoke(str(b, 'identity'));
      return { ok: true };
    },
    'sg.create': async (b) => {
      const members = b.members;
      if (members !== undefined && (!Array.isArray(members) || members.some((m) => typeof m !== 'string'))) {
        throw new CpnsError(ErrorCode.SCHEMA, 'members must be a list of identities', 'members');
      }
      const joinPolicy = b.joinPolicy === 'open' ? 'open' : 'invite';
      return a.createGroup({
        name: str(b, 'name'),
        joinPolicy,
        sourceAuth: b.sourceAuth === true,
        ...(optUint(b, 'rekeyIntervalSec') !== undefined
          ? { rekeyIntervalSec: optUint(b, 'rekeyIntervalSec')! }
          : {}),
        ...(members ? { members: members as string[] } : {}),
      });
    },
    'sg.delete': async (b) => {
      await a.deleteGroup(str(b, 'sgId'));
      return { ok: true };
    },
    'sg.add': async (b) => {
      await a.addMember(str(b, 'sgId'), str(b, 'pne'));
      return { ok: true };
    },
    'sg.remove': async (b) => {
      await a.removeMember(str(b, 'sgId'), str(b, 'pne'));
      return { ok: true };
    },
    'sg.rekey': async (b) => a.rekey(str(b, 'sgId')),
    'sg.status': async (b) => a.groupStatus(str(b, 'sgId')),
    'sg.list': async () => a.listGroups(),
    pns: async () => a.listPns(),
  };
}

export interface AdminHttpOptions {
  readonly certPem: string;
  readonly keyPem: string;
  readonly token: string;
  readonly host?: string;
  readonly port?: number;
}

export class AdminHttp {
  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(actions: AdminActions, opts: AdminHttpOptions): Promise<AdminHttp> {
    const routes = adminRoutes(actions);
    const expected = Buffer.from(`Bearer ${opts.token}`);
    const server = createServer(
      { cert: opts.certPem, key: opts.keyPem, minVersion: 'TLSv1.3' },
      (req, res) => {
        void handle(req, res, routes, expected);
      },
    );
    const host = opts.host ?? '127.0.0.1';
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port ?? 0, host, () => resolve());
    });
    const { port } = server.address() as AddressInfo;
    return new AdminHttp(server, `https://${host}:${port}`);
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.closeAllConnections();
      this.server.close(() => resolve());
    });
  }
}

async function handle(
  req: IncomingMessage,
  res: ServerResponse,
  routes: Record<string, (b: Body) => Promise<unknown>>,
  expected: Buffer,
): Promise<void> {
  const reply = (status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  try {
    const auth = Buffer.from(req.headers.authorization ?? '');
    if (!constantTimeEqual(auth, expected))
      return reply(401, { error: { code: 'UNAUTHORIZED', message: 'bad token' } });
    const action = /^\/admin\/([a-z.]+)$/.exec(req.url ?? '')?.[1];
    const route = action ? routes[action] : undefined;
    if (req.method !== 'POST' || !route)
      return reply(404, { error: { code: 'NOT_FOUND', message: 'no such action' } });
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of req) {
      size += (c as Buffer).length;
      if (size > MAX_BODY) return reply(413, { error: { code: 'TOO_LARGE', message: 'body too large' } });
      chunks.push(c as Buffer);
    }
    let body: Body = {};
    if (size > 0) {
      const parsed: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
        throw new CpnsError(ErrorCode.MALFORMED, 'body must be a JSON object');
      }
      body = parsed as Body;
    }
    reply(200, await route(body));
  } catch (e) {
    const err = e as { code?: unknown; message?: unknown; field?: unknown };
    if (e instanceof SyntaxError)
      return reply(400, { error: { code: 'MALFORMED', message: 'body is not JSON' } });
    const code = typeof err.code === 'string' ? err.code : 'INTERNAL';
    const status = code === 'NOT_FOUND' ? 404 : code === 'FORBIDDEN' ? 403 : code === 'INTERNAL' ? 500 : 400;
    reply(status, {
      error: {
        code,
        message: code === 'INTERNAL' ? 'internal error' : String(err.message),
        field: err.field,
      },
    });
  }
}
