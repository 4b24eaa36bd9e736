import { parseArgs } from 'node:util';
import {
  type AdminEndpoint,
  type AdminEndpointSources,
  adminRequest,
  resolveAdminEndpoint,
  waitForAdminEndpoint,
} from './admin-client.js';
import { defaultDataDir } from './data-dir.js';
import { readSecret, TOKEN_ON_ARGV } from './secrets.js';
import { UsageError } from './usage.js';

export const ADMIN_USAGE = `usage: cpns admin <command> [--data-dir <server data dir>]
                          [--url https://host:7444 --token-file <path>|- --ca <ca.pem>] [--json | --table]
  token create --role gw|pne [--ttl <sec>] [--label <text>]
                                              one-time enrollment token (prints only the token)
  revoke <identity>                           revoke a GW or PNE: sessions closed at once, its SGs rekeyed
  api-token create --name N [--scope read|operator|admin]
                                              a named admin API token (prints only the token, shown once)
  api-token list | api-token revoke <name>    admin tokens (never the tokens); revoke one
  pns                                         PN inventory (GWs, their PNEs, online, last seen)
  identities [--role gw|pne]                  enrolled identities and their revocation
  sg list
  sg create --name N [--open] [--member <pne>]... [--rekey-interval <sec>] [--source-auth]
            [--suite aes-256-gcm|chacha20-poly1305] [--no-update-on-join]
  sg status <sgId>                            Group Key state: members, their PN (GW), online, acked epoch,
                                              delivery method, lag
  sg delete|rekey <sgId>
  sg policy <sgId> [--open|--invite] [--rekey-interval <sec>|--no-rekey] [--source-auth|--no-source-auth]
                   [--update-on-join|--no-update-on-join]
                   [--unicast-only | --broadcast-threshold <n> [--ack-timeout <ms>] | --default-delivery]
  sg add <sgId> <pne> [<pne>...]              add members (several: one key update with update on join)
  sg remove <sgId> <pne>
  (update on join, the default: every join updates the Group Key, so a joiner cannot read earlier messages)
  audit [--sg <sgId>] [--action <a>] [--actor <a>] [--subject <id>] [--after-seq <n>] [--limit <n>] [--all]
                                              audit log, oldest first (--all follows every page)

Output: JSON when stdout is not a terminal (or with --json), a table on a terminal (or with --table); the keys of
the JSON output are stable (docs/cli.md). --id prints only the id(s) (sg create: the sgId; sg list: one sgId a
line; identities: one identity a line), for scripts without jq: SG=$(cpns admin sg create --name n --id).
--wait: wait (up to 2 min) for the server to be up first, saying so on stderr (scripts that start it).
Uses the server's admin REST API (docs/operator.md). On the server's machine, the server's data directory (--data-dir;
default $CPNS_DATA_DIR/server) is enough: its server.json, admin.token and ca.pem. From anywhere else:
  --url <https://host:port>   the admin listener (CPNS_ADMIN_URL)
  --token-file <path>|-       the admin token, from a file or standard input (CPNS_ADMIN_TOKEN_FILE names a file;
                              CPNS_ADMIN_TOKEN holds the token); never on the command line
  --ca <ca.pem>               the CPNS CA certificate (CPNS_ADMIN_CA)
Each one given replaces its file in --data-dir. The admin certificate is checked against the CA and must be the
CPNS Server's, so --url may name the server by any host name or address.`;

type Row = Record<string, unknown>;

/** `--wait`: how long a command waits for the server to be up. */
const WAIT_MS = 120_000;

interface KeyStatus {
  sgId: string;
  currentEpoch: number;
  current: { epoch: number; createdAt: number; reason: string } | null;
  lagging: number;
  members: Row[];
  gateways: Row[];
}

interface AuditPage {
  entries: Row[];
  nextAfterSeq: number | null;
}

const enc = encodeURIComponent;
const time = (v: unknown) => (typeof v === 'number' ? new Date(v).toISOString() : '-');
const cell = (v: unknown) => (v === null || v === undefined ? '-' : String(v));

/** A plain-text table (no colors, no truncation). */
export function table(rows: Row[], cols: readonly string[]): string {
  const data = rows.map((r) => cols.map((c) => cell(r[c])));
  const widths = cols.map((c, i) => Math.max(c.length, ...data.map((d) => (d[i] ?? '').length)));
  const line = (vals: string[]) =>
    vals
      .map((v, i) => v.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line([...cols]), ...data.map(line)].join('\n');
}

/** `cpns admin ...`: operator commands over the server's admin REST API (never the database directly). */
export async function adminCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      'data-dir': { type: 'string', default: defaultDataDir('server') },
      url: { type: 'string', default: process.env.CPNS_ADMIN_URL || undefined },
      ca: { type: 'string', default: process.env.CPNS_ADMIN_CA || undefined },
      token: { type: 'string' },
      'token-file': { type: 'string', default: process.env.CPNS_ADMIN_TOKEN_FILE || undefined },
      role: { type: 'string' },
      ttl: { type: 'string' },
      label: { type: 'string' },
      actor: { type: 'string' },
      subject: { type: 'string' },
      name: { type: 'string' },
      scope: { type: 'string' },
      open: { type: 'boolean', default: false },
      'source-auth': { type: 'boolean', default: false },
      'no-source-auth': { type: 'boolean', default: false },
      'update-on-join': { type: 'boolean', default: false },
      'no-update-on-join': { type: 'boolean', default: false },
      invite: { type: 'boolean', default: false },
      'no-rekey': { type: 'boolean', default: false },
      'unicast-only': { type: 'boolean', default: false },
      'broadcast-threshold': { type: 'string' },
      'ack-timeout': { type: 'string' },
      'default-delivery': { type: 'boolean', default: false },
      suite: { type: 'string' },
      member: { type: 'string', multiple: true },
      'rekey-interval': { type: 'string' },
      sg: { type: 'string' },
      action: { type: 'string' },
      'after-seq': { type: 'string' },
      limit: { type: 'string' },
      all: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      table: { type: 'boolean', default: false },
      wait: { type: 'boolean', default: false },
      id: { type: 'boolean', default: false },
    },
  });
  const [a, b, c] = positionals;
  if (a === undefined || a === 'help') throw new UsageError(ADMIN_USAGE);
  const asTable = values.table || (!values.json && process.stdout.isTTY === true);
  if (values.token !== undefined) throw new UsageError(`${TOKEN_ON_ARGV} (CPNS_ADMIN_TOKEN)`);
  const token = await readSecret(values['token-file'], 'CPNS_ADMIN_TOKEN');
  const sources: AdminEndpointSources = {
    dataDir: values['data-dir'],
    ...(values.url !== undefined ? { url: values.url } : {}),
    ...(values.ca !== undefined ? { ca: values.ca } : {}),
    ...(token !== undefined ? { token } : {}),
  };
  const ep = values.wait
    ? await waitForAdminEndpoint(sources, WAIT_MS, (l) => process.stderr.write(`cpns: ${l}\n`))
    : resolveAdminEndpoint(sources);
  const num = (v: string | undefined, what: string): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 0) throw new UsageError(`${what} must be a non-negative integer`);
    return n;
  };
  const out = (v: unknown, text?: () => string, ids?: () => string[]) => {
    if (values.id) {
      if (!ids) throw new UsageError('--id: this command has no id to print');
      const list = ids();
      if (list.length > 0) process.stdout.write(`${list.join('\n')}\n`);
      return 0;
    }
    process.stdout.write(`${asTable && text ? text() : JSON.stringify(v, null, 2)}\n`);
    return 0;
  };

  if (a === 'token' && b === 'create') {
    if (values.role !== 'gw' && values.role !== 'pne')
      throw new UsageError('token create needs --role gw|pne');
    const ttlSec = num(values.ttl, '--ttl');
    const r = (await adminRequest(ep, 'POST', '/enrollment-tokens', {
      body: {
        role: values.role,
        ...(ttlSec !== undefined ? { ttlSec } : {}),
        ...(values.label !== undefined ? { label: values.label } : {}),
      },
    })) as { token: string };
    if (values.json && !values.id) return out(r);
    process.stdout.write(`${r.token}\n`);
    return 0;
  }
  if (a === 'api-token') return apiTokenCommand(ep, b, c, values, out);
  if (a === 'revoke' && b) {
    const r = (await adminRequest(ep, 'POST', `/identities/${enc(b)}/revoke`)) as Row;
    return out(r, () => `revoked ${cell(r.id)} at ${time(r.revokedAt)}`);
  }
  if (a === 'pns') {
    const pns = (await adminRequest(ep, 'GET', '/pns')) as (Row & { pnes: Row[] })[];
    return out(pns, () =>
      table(
        pns.flatMap((pn) => [
          { pn: pn.gwId, pne: '', online: pn.online, lastSeen: time(pn.lastSeen) },
          ...pn.pnes.map((p) => ({
            pn: '',
            pne: p.pneId,
            online: p.online,
            lastSeen: time(p.lastSeen),
            media: Array.isArray(p.media) ? p.media.join(',') : '',
          })),
        ]),
        ['pn', 'pne', 'online', 'lastSeen', 'media'],
      ),
    );
  }
  if (a === 'identities') {
    const ids = (await adminRequest(ep, 'GET', '/identities', { query: { role: values.role } })) as Row[];
    return out(
      ids,
      () =>
        table(
          ids.map((i) => ({
            ...i,
            createdAt: time(i.createdAt),
            revokedAt: i.revokedAt ? time(i.revokedAt) : '',
          })),
          ['id', 'role', 'certSerial', 'createdAt', 'revokedAt'],
        ),
      () => ids.map((i) => cell(i.id)),
    );
  }
  if (a === 'audit') return audit(ep, values, out, num);
  if (a === 'sg') return sgCommand(ep, b, c, positionals.slice(3), values, out, num);
  throw new UsageError(ADMIN_USAGE);
}

/**
 * `cpns admin api-token create|list|revoke`: named admin tokens with a scope (docs/operator.md "Admin tokens").
 * `create` prints only the token (shown once) unless --json; it needs a token of scope admin.
 */
async function apiTokenCommand(
  ep: AdminEndpoint,
  b: string | undefined,
  c: string | undefined,
  values: { name?: string; scope?: string; json: boolean; id: boolean },
  out: (v: unknown, text?: () => string, ids?: () => string[]) => number,
): Promise<number> {
  if (b === 'create') {
    if (values.name === undefined) throw new UsageError('api-token create needs --name <name>');
    const scope = values.scope ?? 'read';
    if (scope !== 'read' && scope !== 'operator' && scope !== 'admin')
      throw new UsageError('api-token create: --scope read|operator|admin');
    const r = (await adminRequest(ep, 'POST', '/admin-tokens', { body: { name: values.name, scope } })) as {
      token: string;
    };
    if (values.json && !values.id) return out(r);
    process.stdout.write(`${r.token}\n`);
    return 0;
  }
  if (b === 'list') {
    const rows = (await adminRequest(ep, 'GET', '/admin-tokens')) as Row[];
    return out(
      rows,
      () =>
        table(
          rows.map((t) => ({
            ...t,
            createdAt: time(t.createdAt),
            revokedAt: t.revokedAt ? time(t.revokedAt) : '',
          })),
          ['name', 'scope', 'createdAt', 'revokedAt'],
        ),
      () => rows.map((t) => cell(t.name)),
    );
  }
  if (b === 'revoke' && c !== undefined) {
    const r = (await adminRequest(ep, 'POST', `/admin-tokens/${enc(c)}/revoke`)) as Row;
    return out(r, () => `revoked admin token ${cell(r.name)} at ${time(r.revokedAt)}`);
  }
  throw new UsageError(
    'usage: cpns admin api-token create --name <name> [--scope read|operator|admin] | list | revoke <name>',
  );
}

async function sgCommand(
  ep: AdminEndpoint,
  b: string | undefined,
  c: string | undefined,
  rest: string[],
  values: {
    name?: string;
    open: boolean;
    'source-auth': boolean;
    suite?: string;
    member?: string[];
    'rekey-interval'?: string;
    invite: boolean;
    'no-source-auth': boolean;
    'update-on-join': boolean;
    'no-update-on-join': boolean;
    'no-rekey': boolean;
    'unicast-only': boolean;
    'broadcast-threshold'?: string;
    'ack-timeout'?: string;
    'default-delivery': boolean;
  },
  out: (v: unknown, text?: () => string, ids?: () => string[]) => number,
  num: (v: string | undefined, what: string) => number | undefined,
): Promise<number> {
  if (b === 'list') {
    const groups = (await adminRequest(ep, 'GET', '/service-groups')) as Row[];
    return out(
      groups,
      () =>
        table(groups, [
          'sgId',
          'name',
          'ownerId',
          'joinPolicy',
          'updateOnJoin',
          'suite',
          'currentEpoch',
          'memberCount',
        ]),
      () => groups.map((g) => cell(g.sgId)),
    );
  }
  if (b === 'create') {
    if (!values.name) throw new UsageError('sg create needs --name');
    const rekeyIntervalSec = num(values['rekey-interval'], '--rekey-interval');
    const g = (await adminRequest(ep, 'POST', '/service-groups', {
      body: {
        name: values.name,
        joinPolicy: values.open ? 'open' : 'invite',
        sourceAuth: values['source-auth'],
        ...(values['no-update-on-join'] ? { updateOnJoin: false } : {}),
        ...(values.suite ? { suite: values.suite } : {}),
        ...(values.member ? { members: values.member } : {}),
        ...(rekeyIntervalSec !== undefined ? { rekeyIntervalSec } : {}),
      },
    })) as Row;
    // `epoch` kept for scripts written against the first CLI (same as currentEpoch).
    const r = { ...g, epoch: g.currentEpoch };
    return out(
      r,
      () => `created ${cell(g.sgId)} (${cell(g.name)}), epoch ${cell(g.currentEpoch)}`,
      () => [cell(g.sgId)],
    );
  }
  if (b === 'status' && c) {
    const s = (await adminRequest(ep, 'GET', `/service-groups/${enc(c)}/key`)) as KeyStatus;
    return out(s, () => {
      const cur = s.current ? ` (${s.current.reason}, ${time(s.current.createdAt)})` : '';
      return [
        `Service Group ${s.sgId}: epoch ${s.currentEpoch}${cur}; ${s.lagging} of ${s.members.length} members behind`,
        '',
        table(
          s.members.map((m) => ({ ...m, pn: m.gwId, ackedAt: m.ackedAt ? time(m.ackedAt) : null })),
          ['pneId', 'pn', 'online', 'ackedEpoch', 'method', 'lag', 'ackedAt'],
        ),
        '',
        table(s.gateways, ['gwId', 'online', 'ackedEpoch', 'lag']),
      ].join('\n');
    });
  }
  if (b === 'policy' && c) {
    const body: Record<string, unknown> = {};
    if (values.open) body.joinPolicy = 'open';
    if (values.invite) body.joinPolicy = 'invite';
    const interval = num(values['rekey-interval'], '--rekey-interval');
    if (interval !== undefined) body.rekeyIntervalSec = interval;
    if (values['no-rekey']) body.rekeyIntervalSec = null;
    if (values['source-auth']) body.sourceAuth = true;
    if (values['no-source-auth']) body.sourceAuth = false;
    if (values['update-on-join']) body.updateOnJoin = true;
    if (values['no-update-on-join']) body.updateOnJoin = false;
    const threshold = num(values['broadcast-threshold'], '--broadcast-threshold');
    const ackTimeoutMs = num(values['ack-timeout'], '--ack-timeout') ?? 1500;
    if (values['unicast-only'])
      body.deliveryPolicy = { broadcast: false, broadcastThreshold: 1, ackTimeoutMs };
    if (threshold !== undefined)
      body.deliveryPolicy = { broadcast: true, broadcastThreshold: threshold, ackTimeoutMs };
    if (values['default-delivery']) body.deliveryPolicy = null;
    if (Object.keys(body).length === 0) throw new UsageError('sg policy: nothing to change');
    const g = (await adminRequest(ep, 'PATCH', `/service-groups/${enc(c)}`, { body })) as Row;
    return out(g, () => `${cell(g.sgId)}: policy updated`);
  }
  if (b === 'rekey' && c) {
    const r = (await adminRequest(ep, 'POST', `/service-groups/${enc(c)}/rekey`)) as Row;
    return out(r, () => `${cell(r.sgId)}: new epoch ${cell(r.epoch)}`);
  }
  if (b === 'delete' && c) {
    await adminRequest(ep, 'DELETE', `/service-groups/${enc(c)}`);
    return out({ ok: true }, () => `deleted ${c}`);
  }
  const d = rest[0];
  if (b === 'add' && c && d) {
    if (rest.length === 1) {
      await adminRequest(ep, 'POST', `/service-groups/${enc(c)}/members`, { body: { pneId: d } });
    } else {
      await adminRequest(ep, 'POST', `/service-groups/${enc(c)}/members/batch`, { body: { pneIds: rest } });
    }
    return out({ ok: true }, () => `added ${rest.join(', ')} to ${c}`);
  }
  if (b === 'remove' && c && d) {
    await adminRequest(ep, 'DELETE', `/service-groups/${enc(c)}/members/${enc(d)}`);
    return out({ ok: true }, () => `removed ${d} from ${c}; the Group Key was updated`);
  }
  throw new UsageError(ADMIN_USAGE);
}

async function audit(
  ep: AdminEndpoint,
  values: {
    sg?: string;
    action?: string;
    actor?: string;
    subject?: string;
    'after-seq'?: string;
    limit?: string;
    all: boolean;
  },
  out: (v: unknown, text?: () => string) => number,
  num: (v: string | undefined, what: string) => number | undefined,
): Promise<number> {
  const limit = num(values.limit, '--limit');
  let afterSeq = num(values['after-seq'], '--after-seq');
  const entries: Row[] = [];
  let next: number | null = null;
  for (;;) {
    const page = (await adminRequest(ep, 'GET', '/audit', {
      query: {
        sgId: values.sg,
        action: values.action,
        actor: values.actor,
        subject: values.subject,
        afterSeq,
        limit,
      },
    })) as AuditPage;
    entries.push(...page.entries);
    next = page.nextAfterSeq;
    if (!values.all || next === null) break;
    afterSeq = next;
  }
  return out({ entries, nextAfterSeq: next }, () =>
    table(
      entries.map((e) => ({ ...e, at: time(e.at) })),
      ['seq', 'at', 'actor', 'action', 'sgId', 'subject', 'epoch', 'reason'],
    ),
  );
}
