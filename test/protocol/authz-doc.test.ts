import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  type ControlMessage,
  decodeMessage,
  encodeMessage,
  type MessageType,
  messageInfo,
  messageTypes,
} from '../../src/core/codec/index.js';
import { isCpnsError } from '../../src/core/errors.js';
import type { GatewayState, PneConn } from '../../src/gateway/state.js';
import type { PneState } from '../../src/pne/state.js';
import type { AuthzRow } from '../../src/protocol/authz.js';
import { Control, silentLogger } from '../../src/protocol/control.js';
import type { GwConn, PneTunnel, ServerState } from '../../src/server/state.js';
import { encodeFrame } from '../../src/transport/framing.js';
import { sampleMessage } from '../core/codec/helpers.js';

/**
 * docs/protocol.md "Authorization" shows every role's authorization table, generated from the tables in code.
 * Run `UPDATE_DOCS=1 npx vitest run test/protocol/authz-doc.test.ts` to refresh the doc.
 */

type Row = AuthzRow<string, unknown>;
type Node = 'server' | 'GW' | 'PNE';

interface Endpoint {
  /** Marker name in docs/protocol.md: `<!-- authz:<id>:begin -->`. */
  readonly id: string;
  /** The link the messages arrive on (the codec's `dir` names it "from → to"). */
  readonly from: Node;
  readonly to: Node;
  readonly table: () => Promise<{ readonly [t: string]: Row }>;
  /** Rows that are not control messages (shown after the table's rows). */
  readonly extra?: () => Promise<readonly (readonly [label: string, row: Row])[]>;
  /** Replies to this endpoint's own requests, consumed by Control before the table. */
  readonly replies: readonly MessageType[];
  /** Types the codec's `dir` sends here that no role sends on this link: the dispatch refuses them. */
  readonly unserved: { readonly [t in MessageType]?: string };
  /** The `error` code the real dispatch answers a message without a row with. */
  readonly refusal: (msg: ControlMessage) => Promise<string | undefined>;
}

async function rejection(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (e) {
    return isCpnsError(e) ? e.code : String(e);
  }
}

/** A Control that records the code of the `error` it sends. */
function recorder(): { control: Control; code: () => string | undefined } {
  let code: string | undefined;
  const control = new Control((p) => {
    const m = decodeMessage(p);
    if (m.t === 'error') code = m.code;
  });
  return { control, code: () => code };
}

const controlFrame = (msg: ControlMessage): Buffer =>
  Buffer.from(encodeFrame({ kind: 'control', payload: encodeMessage(msg) }));

const ENDPOINTS: readonly Endpoint[] = [
  {
    id: 'server-gw',
    from: 'GW',
    to: 'server',
    table: async () => (await import('../../src/server/gw-messages.js')).GW_MESSAGES,
    replies: [],
    unserved: {
      'enroll.request': 'only on the anonymous enrollment listener (docs/protocol.md "Enrollment")',
      'key.fetch': "sent over the PNE's tunnel (S7), not by the GW",
      error: 'the server sends no request on a GW session',
      ok: 'the server sends no request on a GW session',
    },
    refusal: async (msg) => {
      const { handleGw } = await import('../../src/server/gw-messages.js');
      const srv = { closed: false } as unknown as ServerState;
      return rejection(handleGw(srv, { registered: true } as unknown as GwConn, msg));
    },
  },
  {
    id: 'server-pne',
    from: 'PNE',
    to: 'server',
    table: async () => (await import('../../src/server/pne-messages.js')).PNE_MESSAGES,
    replies: [],
    unserved: {
      error: 'the server sends no request over a tunnel',
      ok: 'the server sends no request over a tunnel',
    },
    refusal: async (msg) => {
      const { handlePne } = await import('../../src/server/pne-messages.js');
      const srv = { closed: false, revokedIds: new Set() } as unknown as ServerState;
      return rejection(handlePne(srv, { identity: 'x' } as unknown as PneTunnel, msg));
    },
  },
  {
    id: 'gw-pne',
    from: 'PNE',
    to: 'GW',
    table: async () => (await import('../../src/gateway/pne-messages.js')).PNE_MESSAGES,
    extra: async () => [
      ['group message (frame 0x05)', (await import('../../src/gateway/pne-messages.js')).GROUP_MESSAGE_RULE],
    ],
    replies: [],
    unserved: {
      'key.fetch': 'sent over the tunnel, end to end to the server (S7)',
      error: 'the GW sends no request on a PNE session',
      ok: 'the GW sends no request on a PNE session',
    },
    refusal: async (msg) => {
      const { handlePne } = await import('../../src/gateway/pne-messages.js');
      return rejection(handlePne({} as GatewayState, {} as PneConn, msg));
    },
  },
  {
    id: 'gw-upstream',
    from: 'server',
    to: 'GW',
    table: async () => (await import('../../src/gateway/upstream-messages.js')).UPSTREAM_MESSAGES,
    replies: ['registered', 'enroll.response'],
    unserved: {},
    refusal: async (msg) => {
      const { onUpstreamFrame } = await import('../../src/gateway/upstream-messages.js');
      const r = recorder();
      onUpstreamFrame({ log: silentLogger } as unknown as GatewayState, r.control, controlFrame(msg));
      return r.code();
    },
  },
  {
    id: 'pne-gw',
    from: 'GW',
    to: 'PNE',
    table: async () => (await import('../../src/pne/gw-messages.js')).GW_MESSAGES,
    replies: [],
    unserved: {},
    refusal: async (msg) => {
      const { onGwFrame } = await import('../../src/pne/gw-messages.js');
      const r = recorder();
      onGwFrame({ log: silentLogger } as unknown as PneState, r.control, controlFrame(msg));
      return r.code();
    },
  },
  {
    id: 'pne-tunnel',
    from: 'server',
    to: 'PNE',
    table: async () => (await import('../../src/pne/tunnel.js')).SERVER_MESSAGES,
    replies: ['sg.created'],
    unserved: {
      'enroll.response': 'only on the enrollment session',
    },
    refusal: async (msg) => {
      const { onServerMessage } = await import('../../src/pne/tunnel.js');
      const r = recorder();
      onServerMessage(
        { log: silentLogger } as unknown as PneState,
        r.control,
        Buffer.from(encodeMessage(msg)),
      );
      return r.code();
    },
  },
];

/** The links ("from → to") the codec's `dir` of a message type names. */
function linksOf(t: MessageType): Set<string> {
  const dir = messageInfo[t].dir;
  const all = ['GW', 'server', 'PNE'] as const;
  const out = new Set<string>();
  if (dir === 'either') {
    for (const a of all) for (const b of all) if (a !== b) out.add(`${a} → ${b}`);
    return out;
  }
  const names = (s: string): string[] =>
    s
      .replace(/\(.*?\)/g, '')
      .trim()
      .split('/')
      .map((n) => (n === 'requester' ? 'GW/PNE' : n))
      .flatMap((n) => n.split('/'));
  for (const seg of dir.split(',')) {
    const hops = seg.split(/→|↔/).map(names);
    for (let i = 0; i + 1 < hops.length; i++)
      for (const a of hops[i] ?? []) for (const b of hops[i + 1] ?? []) out.add(`${a} → ${b}`);
    if (seg.includes('↔'))
      for (const a of hops[1] ?? []) for (const b of hops[0] ?? []) out.add(`${a} → ${b}`);
  }
  return out;
}

const cell = (s: string): string => s.replace(/\|/g, '\\|');

function renderRow(message: string, r: Row): string {
  const claims =
    r.claims.length === 0
      ? 'nothing (identity from its certificate)'
      : r.claims.map((c) => c.claim).join('<br>');
  const checks = r.claims.length === 0 ? 'session identity' : r.claims.map((c) => c.check).join('<br>');
  const codes = [...new Set(r.claims.flatMap((c) => c.refused))];
  const refused = codes.length === 0 ? '—' : codes.map((c) => `\`${c}\``).join(', ');
  return `| ${r.rules.join(', ')} | ${message} | ${cell(r.who)} | ${cell(claims)} | ${cell(checks)} | ${refused} |`;
}

async function renderTable(e: Endpoint): Promise<string> {
  const rows = Object.entries(await e.table()).map(([t, r]) => renderRow(`\`${t}\``, r));
  for (const [label, r] of (await e.extra?.()) ?? []) rows.push(renderRow(label, r));
  return [
    '| rule | message | who may send it | what it may claim | how it is checked | refused with |',
    '|---|---|---|---|---|---|',
    ...rows,
  ].join('\n');
}

const DOC = new URL('../../docs/protocol.md', import.meta.url);
const begin = (id: string): string => `<!-- authz:${id}:begin -->`;
const end = (id: string): string => `<!-- authz:${id}:end -->`;

/** The "Authorization" section of docs/protocol.md, tables included. */
function authzSection(doc: string): string {
  const from = doc.indexOf('\n## Authorization');
  const to = doc.indexOf('\n## ', from + 1);
  expect(from).toBeGreaterThanOrEqual(0);
  return doc.slice(from, to < 0 ? undefined : to);
}

/** The section's prose: the generated tables cut out. */
function prose(doc: string): string {
  let s = authzSection(doc);
  for (const e of ENDPOINTS) {
    const a = s.indexOf(begin(e.id));
    const b = s.indexOf(end(e.id));
    if (a >= 0 && b > a) s = s.slice(0, a) + s.slice(b);
  }
  return s;
}

describe('docs/protocol.md "Authorization" tables are generated from the code', () => {
  it('each table matches its block (UPDATE_DOCS=1 rewrites them)', async () => {
    let doc = readFileSync(DOC, 'utf8');
    for (const e of ENDPOINTS) {
      const generated = `${begin(e.id)}\n${await renderTable(e)}\n${end(e.id)}`;
      const a = doc.indexOf(begin(e.id));
      const b = doc.indexOf(end(e.id));
      if (process.env.UPDATE_DOCS === '1' && a >= 0 && b > a) {
        doc = doc.slice(0, a) + generated + doc.slice(b + end(e.id).length);
        continue;
      }
      expect(a, `marker ${begin(e.id)}`).toBeGreaterThanOrEqual(0);
      expect(doc.slice(a, b + end(e.id).length), `docs/protocol.md block ${e.id}`).toBe(generated);
    }
    if (process.env.UPDATE_DOCS === '1') writeFileSync(DOC, doc);
  });

  it('every rule id of a table is explained in the prose (outside the tables), once', async () => {
    const text = prose(readFileSync(DOC, 'utf8'));
    for (const e of ENDPOINTS) {
      const rows = [...Object.values(await e.table()), ...((await e.extra?.()) ?? []).map(([, r]) => r)];
      for (const id of new Set(rows.flatMap((r) => r.rules))) {
        const defs = text.match(new RegExp(`^- \\*\\*${id}\\*\\*`, 'gm')) ?? [];
        expect(defs.length, `rule ${id} (${e.id}) explained once as "- **${id}** …"`).toBe(1);
      }
    }
  });
});

describe.each(ENDPOINTS)('authorization table $id', (e) => {
  it('every row names at least one rule id, and a claim (if any) says how it is checked', async () => {
    const rows = [...Object.entries(await e.table()), ...((await e.extra?.()) ?? [])];
    for (const [t, r] of rows) {
      expect(r.rules.length, `${e.id} ${t}`).toBeGreaterThan(0);
      expect(r.who, `${e.id} ${t}`).not.toBe('');
      for (const c of r.claims) expect(c.check, `${e.id} ${t}`).not.toBe('');
    }
  });

  it('every message type the codec sends here has exactly one row (or is a reply, or is refused)', async () => {
    const table = await e.table();
    const rows = Object.keys(table);
    for (const t of rows) expect(messageTypes, `${e.id} row ${t}`).toContain(t);
    for (const t of messageTypes) {
      if (!linksOf(t).has(`${e.from} → ${e.to}`)) continue;
      const kinds = [rows.includes(t), e.replies.includes(t), e.unserved[t] !== undefined];
      expect(kinds.filter(Boolean).length, `${e.id}: ${t} (${messageInfo[t].dir})`).toBe(1);
    }
    for (const t of [...e.replies, ...(Object.keys(e.unserved) as MessageType[])]) {
      expect(
        linksOf(t).has(`${e.from} → ${e.to}`),
        `${e.id}: ${t} listed but the codec does not send it here`,
      ).toBe(true);
    }
  });

  it('the dispatch refuses every message type without a row (UNEXPECTED_MESSAGE)', async () => {
    const table = await e.table();
    for (const t of messageTypes) {
      if (Object.hasOwn(table, t)) continue;
      expect(await e.refusal(sampleMessage(t)), `${e.id}: ${t}`).toBe('UNEXPECTED_MESSAGE');
    }
  });
});
