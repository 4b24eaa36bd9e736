// CPNS operator console: vanilla JS, no build step. All data is rendered with textContent (never innerHTML).
// The admin token lives in sessionStorage (this tab only) and is sent as a bearer header, including for the
// live event stream, which is read with fetch() rather than EventSource so the token never goes into a URL.

const TOKEN_KEY = 'cpns.adminToken';
const API = '/api/v1';
const KEY_ACTIONS = new Set(['key.create', 'key.update', 'key.delete']);
const MAX_KEY_UPDATES = 25;

const $ = (id) => document.getElementById(id);

/** h('td', {class: 'id'}, 'text', childNode, ...): builds elements; strings become text nodes. */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/** svg('rect', {x: 1}, ...children): an SVG element (attributes only, never a style attribute: strict CSP). */
function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.setAttribute('class', v);
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const fmtTime = (ms) => (ms ? new Date(ms).toLocaleString() : '—');

/** 850 ms, 2.4 s, 3.1 min, 5.0 h. */
function fmtDuration(ms) {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  if (ms < 3_600_000) return `${(ms / 60_000).toFixed(1)} min`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}

/** "12 s ago", from the page's clock. */
const ago = (ms) => (ms ? `${fmtDuration(Math.max(0, Date.now() - ms))} ago` : '');

/**
 * urn:cpns:pne:1f2e3d4c-... -> pne:1f2e3d4c (the first 8 hex digits of the UUID), an SG id to its first 8 hex
 * digits; anything else as is.
 */
function short(id) {
  if (typeof id !== 'string') return '';
  const m = /^urn:cpns:(gw|pne):([0-9a-f]{8})/.exec(id);
  if (m) return `${m[1]}:${m[2]}`;
  return /^[0-9a-f]{8}-[0-9a-f]{4}-/.test(id) ? id.slice(0, 8) : id.slice(0, 32);
}

/** 90 s, 15 min, 6 h, 1 d (exact when it divides). */
function fmtInterval(sec) {
  for (const [n, u] of [
    [86_400, 'd'],
    [3600, 'h'],
    [60, 'min'],
  ])
    if (sec % n === 0) return `${sec / n} ${u}`;
  return `${sec} s`;
}

/** Online state; while the live connection is down it is unknown (the last known state on hover). */
const pill = (on) =>
  state.stale
    ? h('span', { class: 'pill unknown', title: `last known: ${on ? 'online' : 'offline'}` }, 'unknown')
    : h('span', { class: `pill ${on ? 'on' : 'off'}` }, on ? 'online' : 'offline');

/** The device's label (given with its enrollment token), else its short id. */
const nameOf = (id) => state.labels.get(id) ?? short(id);

/** An identity shown by its label or short id; the full URN on hover, copied on click. */
function idChip(id) {
  if (!id) return h('span', { class: 'muted' }, '—');
  const label = state.labels.get(id);
  return h(
    'button',
    {
      type: 'button',
      class: label ? 'idchip labelled' : 'idchip',
      title: `${label ? `${label}: ` : ''}${id} (click to copy)`,
      'data-id': id,
      onclick: (ev) => copyText(id, ev.currentTarget),
    },
    label ?? short(id),
  );
}

async function copyText(text, el, what = text) {
  try {
    await navigator.clipboard.writeText(text);
    note(what ? `Copied ${what}` : 'Copied');
  } catch {
    // No clipboard permission: select the text so that the operator can copy it by hand.
    const range = document.createRange();
    range.selectNodeContents(el);
    getSelection()?.removeAllRanges();
    getSelection()?.addRange(range);
    note('Press Ctrl+C to copy the selection');
  }
  el.classList.add('copied');
  setTimeout(() => el.classList.remove('copied'), 1200);
}

/** Why an epoch began (the key's `reason`), in words. */
const REASONS = {
  create: 'Service Group created',
  join: 'a member joined',
  leave: 'a member left',
  remove: 'a member was removed',
  operator: 'forced by an operator',
  periodic: 'periodic update',
  revoke: "a member's identity was revoked",
  detach: 'a member detached',
  restart: 'the server restarted uncleanly',
};
const reasonText = (r) => (REASONS[r] ? `${r} (${REASONS[r]})` : r);

// ------------------------------------------------------------------ state

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || '',
  groups: [],
  keyStatus: new Map(),
  keyUpdates: [],
  /** sgId -> the newest key.create / key.update audit entry (who made the current epoch). */
  lastKey: new Map(),
  auditCursor: 0,
  pns: [],
  stream: null,
  /** Bumped at each sign-in and sign-out: an event stream of an earlier session stops. */
  session: 0,
  /** The live connection is down: what is shown may be out of date (see setStale). */
  live: false,
  stale: false,
  staleSince: 0,
  refreshedAt: 0,
  /** Bumped at each `hello`: a refresh started after it clears `stale`. */
  liveGen: 0,
  readOnly: false,
  /** Enrolled PNE identities (for the add-member suggestions). */
  pneIds: [],
  /** Every actor of the audit log (for the actor filter's suggestions). */
  actors: new Set(),
  /** identity -> label, from the enrollment entries of the audit log (identity.enroll, detail.label). */
  labels: new Map(),
  wake: null,
  refreshTimer: null,
  refreshing: false,
  again: false,
};

class ApiFailure extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const headers = { authorization: `Bearer ${state.token}` };
  const init = { method, headers };
  if (body !== undefined) {
    headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(`${API}${path}`, init);
  if (res.status === 204) return null;
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    const e = data?.error ?? { code: 'HTTP', message: `HTTP ${res.status}` };
    if (res.status === 401) signOut('The token was refused.');
    throw new ApiFailure(res.status, e.code, `${e.code}: ${e.message}${e.field ? ` (${e.field})` : ''}`);
  }
  return data;
}

function toast(msg) {
  $('toast').textContent = msg || '';
}

function note(msg) {
  $('note').textContent = msg || '';
}

const READ_ONLY =
  'This token is read-only (scope read): it can look but not change anything. ' +
  'Sign in with a token of scope operator to make changes.';

/** A read token's change is refused with 403 INSUFFICIENT_SCOPE: the page says so and shows it in the header. */
function markReadOnly() {
  state.readOnly = true;
  $('scope').hidden = false;
  document.body.classList.add('read-only');
}

async function act(fn) {
  toast('');
  note('');
  try {
    await fn();
  } catch (e) {
    if (e instanceof ApiFailure && e.code === 'INSUFFICIENT_SCOPE') {
      markReadOnly();
      toast(READ_ONLY);
    } else toast(e instanceof Error ? e.message : String(e));
  }
  scheduleRefresh(0);
}

// ------------------------------------------------------------------ rendering

const PN_PAGE = 10;
const SG_PAGE = 10;
const listView = { pnQuery: '', pnPage: 0, sgQuery: '', sgPage: 0 };

/** Does an identity (its URN, short form or label) contain the lowercase query? */
const idMatches = (id, q) =>
  id.toLowerCase().includes(q) ||
  short(id).includes(q) ||
  (state.labels.get(id) ?? '').toLowerCase().includes(q);

/** One page of `items` (page clamped), with the pager's buttons and text updated. */
function paged(items, pageKey, size, prefix, noun) {
  const pages = Math.max(1, Math.ceil(items.length / size));
  listView[pageKey] = Math.min(listView[pageKey], pages - 1);
  const p = listView[pageKey];
  $(`${prefix}-prev`).disabled = p === 0;
  $(`${prefix}-next`).disabled = p >= pages - 1;
  $(`${prefix}-page`).textContent =
    items.length === 0
      ? `No ${noun}`
      : `${p * size + 1}–${Math.min(items.length, (p + 1) * size)} of ${items.length} ${noun}` +
        (pages > 1 ? ` (page ${p + 1} of ${pages})` : '');
  return items.slice(p * size, (p + 1) * size);
}

function renderPns(pns) {
  const q = listView.pnQuery;
  // A PN matches by its GW (all its PNEs shown) or by some of its PNEs (only those shown).
  const shown = [];
  for (const pn of pns) {
    if (!q || idMatches(pn.gwId, q)) shown.push(pn);
    else {
      const pnes = pn.pnes.filter((p) => idMatches(p.pneId, q));
      if (pnes.length > 0) shown.push({ ...pn, pnes, partial: true });
    }
  }
  const tbody = $('pns').tBodies[0];
  const rows = [];
  for (const pn of paged(
    shown,
    'pnPage',
    PN_PAGE,
    'pn',
    `Personal Network${shown.length === 1 ? '' : 's'}`,
  )) {
    rows.push(
      h(
        'tr',
        { class: 'gw', 'data-gw-id': pn.gwId },
        h('td', { 'data-label': 'Node' }, 'GW ', idChip(pn.gwId)),
        h('td', { 'data-label': 'State' }, pill(pn.online)),
        h('td', { 'data-label': 'Last seen' }, fmtTime(pn.lastSeen)),
        h(
          'td',
          { 'data-label': 'PNEs' },
          `${pn.pnes.length}${pn.partial ? ' matching' : ''} PNE${pn.pnes.length === 1 ? '' : 's'}`,
        ),
        h('td', {}, revokeButton(pn.gwId)),
      ),
    );
    for (const p of pn.pnes) {
      rows.push(
        h(
          'tr',
          { class: 'pne', 'data-pne-id': p.pneId },
          h('td', { 'data-label': 'Node' }, idChip(p.pneId)),
          h('td', { 'data-label': 'State' }, pill(p.online)),
          h('td', { 'data-label': 'Last seen' }, fmtTime(p.lastSeen)),
          h('td', { 'data-label': 'Media' }, p.media.join(', ')),
          h('td', {}, revokeButton(p.pneId)),
        ),
      );
    }
  }
  tbody.replaceChildren(...rows);
  $('pns-empty').hidden = pns.length > 0;
}

function revokeButton(id) {
  return h(
    'button',
    {
      type: 'button',
      class: 'danger',
      'data-action': 'revoke',
      onclick: () => {
        if (!confirm(`Revoke ${id}? Its sessions close and its Service Groups get a new key.`)) return;
        act(() => api('POST', `/identities/${encodeURIComponent(id)}/revoke`));
      },
    },
    'Revoke',
  );
}

/** Latency of a member's ack of the current epoch (ms from the key's creation), or null if it has not acked it. */
function ackLatency(ks, m) {
  if (!ks.current || m.ackedEpoch !== ks.currentEpoch || m.ackedAt === null) return null;
  return Math.max(0, m.ackedAt - ks.current.createdAt);
}

const METHODS = ['unicast', 'broadcast', 'fallback'];

/**
 * The members of a key status grouped by their GW (GWs by id, the members without a GW last), each group with
 * its acks of the current epoch by method and its laggards.
 */
function deliveryByGw(ks) {
  const gws = new Map((ks.gateways ?? []).map((g) => [g.gwId, g]));
  const byGw = new Map();
  const total = { members: 0, acked: 0, methods: { unicast: 0, broadcast: 0, fallback: 0 }, laggards: [] };
  for (const m of ks.members) {
    const key = m.gwId ?? '';
    let g = byGw.get(key);
    if (!g) {
      g = { gwId: m.gwId, gw: gws.get(m.gwId) ?? null, members: [], acked: 0, methods: {}, laggards: [] };
      for (const k of METHODS) g.methods[k] = 0;
      byGw.set(key, g);
    }
    g.members.push(m);
    total.members++;
    if (m.lag === 0 && m.ackedEpoch !== null) {
      g.acked++;
      total.acked++;
      if (m.method && m.method in g.methods) {
        g.methods[m.method]++;
        total.methods[m.method]++;
      }
    } else {
      g.laggards.push(m);
      total.laggards.push(m);
    }
  }
  const order = [...byGw.keys()].sort((a, b) => (a === '' ? 1 : b === '' ? -1 : a < b ? -1 : 1));
  for (const g of byGw.values()) g.laggards.sort((a, b) => b.lag - a.lag);
  total.laggards.sort((a, b) => b.lag - a.lag);
  return { groups: order.map((k) => byGw.get(k)), total };
}

const methodCounts = (methods) => METHODS.map((k) => `${k} ${methods[k]}`).join(' · ');

function laggardList(laggards) {
  if (laggards.length === 0) return null;
  const items = [];
  laggards.forEach((m, i) => {
    if (i > 0) items.push(', ');
    items.push(idChip(m.pneId), ` by ${m.lag}`);
  });
  return h(
    'p',
    { class: 'laggards', 'data-testid': 'laggards' },
    h('span', { class: 'behind' }, 'Behind: '),
    items,
  );
}

function memberRow(sg, ks, m) {
  const behind =
    m.lag > 0
      ? h(
          'span',
          { class: 'behind' },
          `behind by ${m.lag} (has ${m.ackedEpoch ?? 'none'}, current ${ks.currentEpoch})`,
        )
      : h('span', { class: 'ok' }, `up to date (epoch ${m.ackedEpoch})`);
  const latency = ackLatency(ks, m);
  return h(
    'tr',
    { 'data-pne-id': m.pneId },
    h('td', { 'data-label': 'Member' }, idChip(m.pneId)),
    h('td', { 'data-label': 'State' }, pill(m.online)),
    h('td', { 'data-label': 'Group Key', 'data-testid': 'member-key' }, behind),
    h(
      'td',
      { 'data-label': 'Delivery', title: m.ackedAt ? `acked ${fmtTime(m.ackedAt)}` : '' },
      m.method ?? '—',
    ),
    h(
      'td',
      { 'data-label': 'Ack latency', 'data-testid': 'ack-latency' },
      latency === null ? '—' : fmtDuration(latency),
    ),
    h(
      'td',
      {},
      h(
        'button',
        {
          type: 'button',
          class: 'danger',
          'data-action': 'remove-member',
          onclick: () => {
            if (!confirm(`Remove ${m.pneId} from ${sg.name}? The Group Key is updated at once.`)) return;
            act(() =>
              api(
                'DELETE',
                `/service-groups/${encodeURIComponent(sg.sgId)}/members/${encodeURIComponent(m.pneId)}`,
              ),
            );
          },
        },
        'Remove',
      ),
    ),
  );
}

/** One GW's share of a Service Group: acks of the current epoch by method, laggards, then its members. */
function gwBlock(sg, ks, g) {
  const gwState = g.gw
    ? g.gw.lag > 0
      ? h('span', { class: 'behind' }, `GW behind by ${g.gw.lag}`)
      : h('span', { class: 'ok' }, `GW acked epoch ${g.gw.ackedEpoch}`)
    : null;
  return h(
    'div',
    { class: 'gwblock', 'data-testid': 'gw-delivery', 'data-gw-id': g.gwId ?? 'none' },
    h(
      'div',
      { class: 'gwhead' },
      g.gwId ? h('strong', {}, 'GW ', idChip(g.gwId)) : h('strong', {}, 'Not attached to a GW'),
      g.gw ? pill(g.gw.online) : null,
      h(
        'span',
        { 'data-testid': 'gw-acked' },
        `${g.acked}/${g.members.length} acked epoch ${ks.currentEpoch}`,
      ),
      h('span', { class: 'muted', 'data-testid': 'gw-methods' }, methodCounts(g.methods)),
      gwState,
    ),
    laggardList(g.laggards),
    h(
      'table',
      { class: 'members' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          h('th', {}, 'Member'),
          h('th', {}, 'State'),
          h('th', {}, 'Group Key'),
          h('th', {}, 'Delivery'),
          h('th', {}, 'Ack latency'),
          h('th', {}),
        ),
      ),
      h(
        'tbody',
        {},
        g.members.map((m) => memberRow(sg, ks, m)),
      ),
    ),
  );
}

/**
 * The ack latency of the current epoch as a horizontal bar chart (inline SVG): one bar per member, the time from
 * the key's creation to the member's ack, coloured by delivery method; members that have not acked are listed
 * without a bar.
 */
function ackChart(ks) {
  if (!ks.current || ks.members.length === 0) return null;
  const rows = ks.members
    .map((m) => ({ m, ms: ackLatency(ks, m) }))
    .sort((a, b) => (a.ms ?? Infinity) - (b.ms ?? Infinity) || (a.m.pneId < b.m.pneId ? -1 : 1));
  const acked = rows.filter((r) => r.ms !== null);
  const max = Math.max(1, ...acked.map((r) => r.ms));
  // As wide as the card (at most 600 units), so that its text stays legible at phone width.
  const W = Math.round(Math.max(300, Math.min(600, $('groups').clientWidth - 24)));
  const LABEL = 110;
  const VALUE = 80;
  const ROW = 20;
  const AXIS = 20;
  const plot = W - LABEL - VALUE;
  const H = rows.length * ROW + AXIS;
  const bars = rows.map((r, i) => {
    const y = i * ROW;
    const name = nameOf(r.m.pneId);
    const label = svg(
      'text',
      { x: LABEL - 6, y: y + 14, 'text-anchor': 'end', class: 'label' },
      name.length > 16 ? `${name.slice(0, 15)}…` : name,
    );
    if (r.ms === null) {
      return svg(
        'g',
        { class: 'row missing', 'data-pne-id': r.m.pneId },
        svg('title', {}, `${r.m.pneId}: has not acked epoch ${ks.currentEpoch}`),
        label,
        svg('text', { x: LABEL + 2, y: y + 14, class: 'value' }, `not acked (behind by ${r.m.lag})`),
      );
    }
    const w = Math.max(2, (r.ms / max) * plot);
    return svg(
      'g',
      { class: 'row', 'data-pne-id': r.m.pneId, 'data-latency-ms': r.ms },
      svg('title', {}, `${r.m.pneId}: ${fmtDuration(r.ms)} by ${r.m.method ?? '?'}`),
      label,
      svg('rect', {
        x: LABEL,
        y: y + 3,
        width: w.toFixed(1),
        height: ROW - 6,
        class: `bar ${r.m.method ?? ''}`,
      }),
      svg('text', { x: LABEL + w + 4, y: y + 14, class: 'value' }, fmtDuration(r.ms)),
    );
  });
  const axisY = rows.length * ROW + 2;
  const axis = svg(
    'g',
    { class: 'axis' },
    svg('line', { x1: LABEL, y1: axisY, x2: LABEL + plot, y2: axisY }),
    svg('text', { x: LABEL, y: axisY + 14, 'text-anchor': 'start' }, '0'),
    acked.length > 0
      ? svg('text', { x: LABEL + plot, y: axisY + 14, 'text-anchor': 'end' }, fmtDuration(max))
      : null,
  );
  return h(
    'figure',
    { class: 'chart', 'data-testid': 'ack-chart' },
    h(
      'figcaption',
      {},
      `Ack latency of epoch ${ks.currentEpoch}: time from the key's creation to each member's ack (${acked.length}/${rows.length} acked)`,
    ),
    svg(
      'svg',
      {
        viewBox: `0 0 ${W} ${H}`,
        role: 'img',
        'aria-label': `Ack latency of epoch ${ks.currentEpoch}`,
        class: 'latency',
      },
      bars,
      axis,
    ),
    h(
      'p',
      { class: 'legend' },
      METHODS.map((k) => h('span', { class: `key ${k}` }, k)),
    ),
  );
}

/** The parts of a Service Group card that are redrawn on every refresh (the forms are kept, see groupCard). */
function cardHead(sg, ks) {
  const epoch = ks ? ks.currentEpoch : sg.currentEpoch;
  const cur = ks?.current;
  const who = state.lastKey.get(sg.sgId);
  const actor = who && who.epoch === epoch ? who.actor : null;
  return [
    h(
      'div',
      { class: 'head' },
      h('h3', {}, sg.name),
      idChip(sg.sgId),
      h('span', {}, 'epoch ', h('span', { class: 'epoch', 'data-testid': 'epoch' }, String(epoch))),
      ks && ks.lagging > 0
        ? h('span', { class: 'behind', 'data-testid': 'lagging' }, `${ks.lagging} behind`)
        : null,
    ),
    cur
      ? h(
          'p',
          { class: 'changed', 'data-testid': 'epoch-change' },
          `Epoch ${cur.epoch} since ${fmtTime(cur.createdAt)} (${ago(cur.createdAt)}): ${reasonText(cur.reason)}`,
          actor ? `, by ${actor}` : '',
        )
      : h('p', { class: 'muted' }, 'No Group Key.'),
    h(
      'p',
      { class: 'muted', 'data-testid': 'policy' },
      `join ${sg.joinPolicy} · ${sg.suite}` +
        (sg.sourceAuth ? ' · source authentication' : ' · no source authentication') +
        (sg.updateOnJoin === false
          ? ' · no update on join (joiners can read this epoch)'
          : ' · update on join') +
        (sg.rekeyIntervalSec
          ? ` · update every ${fmtInterval(sg.rekeyIntervalSec)}`
          : ' · no periodic update') +
        (sg.deliveryPolicy
          ? ` · delivery: ${sg.deliveryPolicy.broadcast ? `broadcast from ${sg.deliveryPolicy.broadcastThreshold} members` : 'unicast only'}, fallback after ${sg.deliveryPolicy.ackTimeoutMs} ms`
          : ' · server-wide delivery policy'),
    ),
  ];
}

function cardBody(sg, ks) {
  const members = ks ? ks.members : [];
  if (members.length === 0) return [h('p', { class: 'muted' }, 'No members.')];
  const d = deliveryByGw(ks);
  return [
    h(
      'p',
      { class: 'summary', 'data-testid': 'delivery-summary' },
      `Epoch ${ks.currentEpoch}: ${d.total.acked} of ${d.total.members} members acked (${methodCounts(d.total.methods)})`,
      d.total.laggards.length > 0 ? `; ${d.total.laggards.length} behind` : '',
    ),
    d.groups.map((g) => gwBlock(sg, ks, g)),
    ackChart(ks),
  ];
}

/** Cards are kept per sgId across refreshes, so that a form being filled in is not thrown away by a live update. */
const cards = new Map();

function groupCard(sgId) {
  let c = cards.get(sgId);
  if (c) return c;
  const sgNow = () => state.groups.find((g) => g.sgId === sgId);
  const top = h('div', { class: 'top' });
  const tools = h(
    'div',
    { class: 'tools' },
    h(
      'button',
      {
        type: 'button',
        'data-action': 'rekey',
        onclick: () => act(() => api('POST', `/service-groups/${encodeURIComponent(sgId)}/rekey`)),
      },
      'Force key update',
    ),
    h(
      'button',
      {
        type: 'button',
        class: 'danger',
        'data-action': 'delete-sg',
        onclick: () => {
          const sg = sgNow();
          if (
            !sg ||
            !confirm(`Delete Service Group ${sg.name}? Its keys are deleted; this cannot be undone.`)
          )
            return;
          act(() => api('DELETE', `/service-groups/${encodeURIComponent(sgId)}`));
        },
      },
      'Delete',
    ),
    addMemberForm(sgId),
    policyForm(sgId),
  );
  const body = h('div', { class: 'body' });
  const el = h('article', { class: 'sg', 'data-sg-id': sgId }, top, tools, body);
  c = { el, top, tools, body };
  cards.set(sgId, c);
  return c;
}

/** A Service Group matches by its name, its id or one of its members. */
const sgMatches = (sg, q) =>
  sg.name.toLowerCase().includes(q) || sg.sgId.includes(q) || sg.members.some((m) => idMatches(m, q));

function renderGroups() {
  const q = listView.sgQuery;
  const shown = q ? state.groups.filter((sg) => sgMatches(sg, q)) : state.groups;
  const els = paged(shown, 'sgPage', SG_PAGE, 'sg', `Service Group${shown.length === 1 ? '' : 's'}`).map(
    (sg) => {
      const c = groupCard(sg.sgId);
      const ks = state.keyStatus.get(sg.sgId);
      c.el.setAttribute('data-sg-name', sg.name);
      c.top.replaceChildren(...cardHead(sg, ks));
      c.body.replaceChildren(...cardBody(sg, ks).flat().filter(Boolean));
      return c.el;
    },
  );
  const live = new Set(state.groups.map((g) => g.sgId));
  for (const id of [...cards.keys()]) if (!live.has(id)) cards.delete(id);
  const box = $('groups');
  const same = box.children.length === els.length && els.every((e, i) => box.children[i] === e);
  if (!same) box.replaceChildren(...els);
  $('groups-empty').hidden = state.groups.length > 0;
}

function renderKeyUpdates() {
  const names = new Map(state.groups.map((g) => [g.sgId, g.name]));
  const rows = [...state.keyUpdates]
    .reverse()
    .map((e) =>
      h(
        'tr',
        { 'data-seq': e.seq },
        h('td', { 'data-label': 'When' }, fmtTime(e.at)),
        h(
          'td',
          { 'data-label': 'Service Group', title: e.sgId ?? '' },
          names.get(e.sgId) ?? short(e.sgId ?? ''),
        ),
        h('td', { 'data-label': 'Epoch' }, e.epoch ?? '—'),
        h('td', { 'data-label': 'Operation' }, e.action),
        h('td', { 'data-label': 'Reason' }, e.reason ?? '—'),
        h('td', { 'data-label': 'By' }, who(e.actor)),
      ),
    );
  $('key-updates').tBodies[0].replaceChildren(...rows);
}

// ------------------------------------------------------------------ actions: members, policy

const UUID_HTML = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
/** The delivery policy a form starts from when an SG has none of its own (the server's default, src/protocol). */
const DEFAULT_DELIVERY = { broadcast: true, broadcastThreshold: 3, ackTimeoutMs: 1500 };

function addMemberForm(sgId) {
  const input = h('input', {
    name: 'pneId',
    required: true,
    list: 'pne-ids',
    pattern: `(urn:cpns:pne:)?${UUID_HTML}`,
    title: 'urn:cpns:pne:<uuid> or the bare UUID of an enrolled PNE',
    placeholder: 'urn:cpns:pne:…',
    autocomplete: 'off',
  });
  return h(
    'form',
    {
      class: 'inline add-member',
      'data-testid': 'add-member',
      onsubmit: (ev) => {
        ev.preventDefault();
        const sg = state.groups.find((g) => g.sgId === sgId);
        const pneId = input.value.trim();
        act(async () => {
          await api('POST', `/service-groups/${encodeURIComponent(sgId)}/members`, { pneId });
          input.value = '';
          note(`${pneId} added to ${sg?.name ?? sgId}`);
        });
      },
    },
    h('label', {}, 'Add member', input),
    h('button', { type: 'submit', 'data-action': 'add-member' }, 'Add'),
  );
}

const onOff = (b) => (b ? 'on' : 'off');
const deliveryText = (p) =>
  p
    ? `${p.broadcast ? `broadcast from ${p.broadcastThreshold} members` : 'unicast only'}, fallback after ${p.ackTimeoutMs} ms`
    : 'server-wide';
const sameDelivery = (a, b) =>
  a === b ||
  (a !== null &&
    b !== null &&
    a.broadcast === b.broadcast &&
    a.broadcastThreshold === b.broadcastThreshold &&
    a.ackTimeoutMs === b.ackTimeoutMs);

/** The policy form of an SG (kept across refreshes; filled from the SG each time it is opened). */
function policyForm(sgId) {
  const f = {
    joinPolicy: h(
      'select',
      { name: 'joinPolicy' },
      h('option', { value: 'invite' }, 'invite'),
      h('option', { value: 'open' }, 'open'),
    ),
    updateOnJoin: h('input', { name: 'updateOnJoin', type: 'checkbox' }),
    rekeyIntervalSec: h('input', {
      name: 'rekeyIntervalSec',
      type: 'number',
      min: 60,
      max: 366 * 24 * 3600,
      step: 1,
      placeholder: 'off',
    }),
    sourceAuth: h('input', { name: 'sourceAuth', type: 'checkbox' }),
    defaultDelivery: h('input', { name: 'defaultDelivery', type: 'checkbox' }),
    broadcast: h('input', { name: 'broadcast', type: 'checkbox' }),
    broadcastThreshold: h('input', {
      name: 'broadcastThreshold',
      type: 'number',
      min: 1,
      max: 65536,
      step: 1,
      required: true,
    }),
    ackTimeoutMs: h('input', {
      name: 'ackTimeoutMs',
      type: 'number',
      min: 10,
      max: 600000,
      step: 1,
      required: true,
    }),
  };
  const deliveryInputs = [f.broadcast, f.broadcastThreshold, f.ackTimeoutMs];
  const syncDelivery = () => {
    for (const i of deliveryInputs) i.disabled = f.defaultDelivery.checked;
  };
  f.defaultDelivery.addEventListener('change', syncDelivery);
  const fill = (sg) => {
    f.joinPolicy.value = sg.joinPolicy;
    f.updateOnJoin.checked = sg.updateOnJoin !== false;
    f.rekeyIntervalSec.value = sg.rekeyIntervalSec ? String(sg.rekeyIntervalSec) : '';
    f.sourceAuth.checked = sg.sourceAuth;
    f.defaultDelivery.checked = !sg.deliveryPolicy;
    const d = sg.deliveryPolicy ?? DEFAULT_DELIVERY;
    f.broadcast.checked = d.broadcast;
    f.broadcastThreshold.value = String(d.broadcastThreshold);
    f.ackTimeoutMs.value = String(d.ackTimeoutMs);
    syncDelivery();
  };
  /** The fields that differ from the SG, and each change in words (with what it weakens). */
  const diff = (sg) => {
    const patch = {};
    const lines = [];
    if (f.joinPolicy.value !== sg.joinPolicy) {
      patch.joinPolicy = f.joinPolicy.value;
      lines.push(
        `join policy: ${sg.joinPolicy} → ${patch.joinPolicy}` +
          (patch.joinPolicy === 'open' ? ' (any enrolled PNE may join)' : ''),
      );
    }
    const uoj = f.updateOnJoin.checked;
    if (uoj !== (sg.updateOnJoin !== false)) {
      patch.updateOnJoin = uoj;
      lines.push(
        `update key on join: ${onOff(!uoj)} → ${onOff(uoj)}` +
          (uoj ? '' : ' (a joiner can read what was sent earlier in the epoch)'),
      );
    }
    const every = f.rekeyIntervalSec.value === '' ? null : Number(f.rekeyIntervalSec.value);
    if (every !== (sg.rekeyIntervalSec ?? null)) {
      patch.rekeyIntervalSec = every;
      const was = sg.rekeyIntervalSec ? `every ${fmtInterval(sg.rekeyIntervalSec)}` : 'off';
      lines.push(`periodic update: ${was} → ${every === null ? 'off' : `every ${fmtInterval(every)}`}`);
    }
    if (f.sourceAuth.checked !== sg.sourceAuth) {
      patch.sourceAuth = f.sourceAuth.checked;
      lines.push(
        `source authentication: ${onOff(sg.sourceAuth)} → ${onOff(patch.sourceAuth)}` +
          (patch.sourceAuth ? ' (unsigned messages are refused)' : ' (messages need no sender signature)'),
      );
    }
    const delivery = f.defaultDelivery.checked
      ? null
      : {
          broadcast: f.broadcast.checked,
          broadcastThreshold: Number(f.broadcastThreshold.value),
          ackTimeoutMs: Number(f.ackTimeoutMs.value),
        };
    if (!sameDelivery(delivery, sg.deliveryPolicy ?? null)) {
      patch.deliveryPolicy = delivery;
      lines.push(`delivery: ${deliveryText(sg.deliveryPolicy)} → ${deliveryText(delivery)}`);
    }
    return { patch, lines };
  };
  const form = h(
    'form',
    {
      class: 'inline policy-form',
      'data-testid': 'policy-form',
      onsubmit: (ev) => {
        ev.preventDefault();
        const sg = state.groups.find((g) => g.sgId === sgId);
        if (!sg) return;
        const { patch, lines } = diff(sg);
        if (lines.length === 0) {
          note('Nothing to change.');
          return;
        }
        if (!confirm(`Change the policy of ${sg.name}?\n- ${lines.join('\n- ')}`)) return;
        act(async () => {
          await api('PATCH', `/service-groups/${encodeURIComponent(sgId)}`, patch);
          details.open = false;
          note(`Policy of ${sg.name} changed: ${lines.join('; ')}`);
        });
      },
    },
    h('label', {}, 'Join', f.joinPolicy),
    h('label', { class: 'check' }, f.updateOnJoin, ' update key on join'),
    h('label', {}, 'Periodic update (s)', f.rekeyIntervalSec),
    h('label', { class: 'check' }, f.sourceAuth, ' source authentication'),
    h(
      'fieldset',
      {},
      h('legend', {}, 'Delivery'),
      h('label', { class: 'check' }, f.defaultDelivery, ' server-wide policy'),
      h('label', { class: 'check' }, f.broadcast, ' broadcast'),
      h('label', {}, 'Broadcast from (members)', f.broadcastThreshold),
      h('label', {}, 'Unicast fallback after (ms)', f.ackTimeoutMs),
    ),
    h('button', { type: 'submit', 'data-action': 'apply-policy' }, 'Apply…'),
  );
  const details = h(
    'details',
    { class: 'policy' },
    h('summary', { 'data-action': 'policy' }, 'Change policy…'),
    form,
  );
  details.addEventListener('toggle', () => {
    const sg = state.groups.find((g) => g.sgId === sgId);
    if (details.open && sg) fill(sg);
  });
  return details;
}

// ------------------------------------------------------------------ actions: enrollment tokens

function showEnrollToken(r) {
  const what = `Enrollment token for a ${r.role === 'gw' ? 'PN Gateway' : 'PNE'}${r.label ? ` “${r.label}”` : ''}, valid until ${fmtTime(r.expiresAt)}, once.`;
  $('enroll-what').textContent = what;
  $('enroll-token').textContent = r.token;
  $('enroll-result').hidden = false;
}

/** Forgets the token shown: it is in the page only until the operator is done with it. */
function clearEnrollToken() {
  $('enroll-token').textContent = '';
  $('enroll-what').textContent = '';
  $('enroll-result').hidden = true;
}

$('enroll-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const f = ev.target;
  const field = (n) => f.elements.namedItem(n);
  const body = { role: field('role').value, ttlSec: Number(field('ttlSec').value) };
  const label = field('label').value.trim();
  if (label) body.label = label;
  act(async () => {
    clearEnrollToken();
    showEnrollToken(await api('POST', '/enrollment-tokens', body));
    field('label').value = '';
  });
});
$('enroll-copy').addEventListener('click', () =>
  copyText($('enroll-token').textContent, $('enroll-token'), 'the enrollment token'),
);
$('enroll-done').addEventListener('click', clearEnrollToken);

// ------------------------------------------------------------------ audit view (newest first, paged, filtered)

const AUDIT_PAGE = 20;
const auditView = {
  /** The filters applied (sgId, subject, action, actor), as the form had them at "Filter". */
  filters: {},
  /** beforeSeq of the page shown; null: the newest page. */
  before: null,
  /** The beforeSeq of each newer page, to go back. */
  history: [],
  page: null,
};

/** An actor or subject: an identity as a chip (the URN on hover and copy), anything else as text. */
const who = (v) => (typeof v === 'string' && v.startsWith('urn:cpns:') ? idChip(v) : (v ?? '—'));

function renderAudit() {
  const page = auditView.page;
  const names = new Map(state.groups.map((g) => [g.sgId, g.name]));
  const rows = (page?.entries ?? []).map((e) =>
    h(
      'tr',
      { 'data-seq': e.seq },
      h('td', { 'data-label': 'Seq' }, e.seq),
      h('td', { 'data-label': 'When' }, fmtTime(e.at)),
      h('td', { 'data-label': 'Actor', class: 'actor' }, who(e.actor)),
      h('td', { 'data-label': 'Action', class: 'action' }, e.action),
      h(
        'td',
        { 'data-label': 'Service Group', title: e.sgId ?? '', class: 'sg' },
        e.sgId ? (names.get(e.sgId) ?? short(e.sgId)) : '—',
      ),
      h('td', { 'data-label': 'Subject', class: 'subject' }, who(e.subject)),
      h('td', { 'data-label': 'Epoch', class: 'epoch' }, e.epoch ?? '—'),
      h('td', { 'data-label': 'Reason' }, e.reason ?? '—'),
      h('td', { 'data-label': 'Detail', class: 'detail' }, e.detail ? JSON.stringify(e.detail) : ''),
    ),
  );
  $('audit-log').tBodies[0].replaceChildren(...rows);
  $('audit-empty').hidden = rows.length > 0;
  $('audit-newer').disabled = auditView.before === null;
  $('audit-older').disabled = !page || page.nextBeforeSeq === null;
  const n = auditView.history.length + 1;
  const filtered = Object.keys(auditView.filters).length > 0;
  $('audit-page').textContent = page
    ? `Page ${n}, newest first${filtered ? ', filtered' : ''}: ${rows.length} entr${rows.length === 1 ? 'y' : 'ies'}`
    : '';
}

async function loadAuditPage() {
  const q = new URLSearchParams({ order: 'desc', limit: String(AUDIT_PAGE) });
  for (const [k, v] of Object.entries(auditView.filters)) q.set(k, v);
  if (auditView.before !== null) q.set('beforeSeq', String(auditView.before));
  auditView.page = await api('GET', `/audit?${q}`);
  renderAudit();
}

/** The select of Service Groups and the suggestions (identities, actors seen), keeping what is selected. */
function renderAuditChoices(identities) {
  const sel = $('audit-filters').elements.namedItem('sgId');
  const keep = sel.value;
  const want = ['', ...state.groups.map((g) => g.sgId)];
  const have = [...sel.options].map((o) => o.value);
  if (want.join() !== have.join()) {
    sel.replaceChildren(
      h('option', { value: '' }, 'all'),
      ...state.groups.map((g) => h('option', { value: g.sgId }, g.name)),
    );
    sel.value = want.includes(keep) ? keep : '';
  }
  $('identity-ids').replaceChildren(...identities.map((i) => h('option', { value: i.id }, nameOf(i.id))));
  $('actor-ids').replaceChildren(...[...state.actors].sort().map((a) => h('option', { value: a })));
}

// ------------------------------------------------------------------ search and paging of the long lists

for (const [prefix, queryKey, pageKey, render] of [
  ['pn', 'pnQuery', 'pnPage', () => renderPns(state.pns)],
  ['sg', 'sgQuery', 'sgPage', renderGroups],
]) {
  $(`${prefix}-search`).addEventListener('input', (ev) => {
    listView[queryKey] = ev.target.value.trim().toLowerCase();
    listView[pageKey] = 0;
    render();
  });
  $(`${prefix}-prev`).addEventListener('click', () => {
    listView[pageKey] = Math.max(0, listView[pageKey] - 1);
    render();
  });
  $(`${prefix}-next`).addEventListener('click', () => {
    listView[pageKey]++;
    render();
  });
}

$('audit-filters').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const f = ev.target;
  const filters = {};
  for (const k of ['sgId', 'subject', 'action', 'actor']) {
    const v = f.elements.namedItem(k).value.trim();
    if (v) filters[k] = v;
  }
  auditView.filters = filters;
  auditView.before = null;
  auditView.history = [];
  act(loadAuditPage);
});
$('audit-filters').addEventListener('reset', () => {
  auditView.filters = {};
  auditView.before = null;
  auditView.history = [];
  if (state.token) act(loadAuditPage);
});
$('audit-older').addEventListener('click', () => {
  const next = auditView.page?.nextBeforeSeq;
  if (next === null || next === undefined) return;
  auditView.history.push(auditView.before);
  auditView.before = next;
  act(loadAuditPage);
});
$('audit-newer').addEventListener('click', () => {
  if (auditView.before === null) return;
  auditView.before = auditView.history.pop() ?? null;
  act(loadAuditPage);
});

// ------------------------------------------------------------------ data

async function loadAudit() {
  for (let pages = 0; pages < 20; pages++) {
    const page = await api('GET', `/audit?afterSeq=${state.auditCursor}&limit=1000`);
    for (const e of page.entries) {
      state.auditCursor = Math.max(state.auditCursor, e.seq);
      state.actors.add(e.actor);
      if (e.action === 'identity.enroll' && e.subject && typeof e.detail?.label === 'string')
        state.labels.set(e.subject, e.detail.label);
      if (KEY_ACTIONS.has(e.action)) {
        state.keyUpdates.push(e);
        if (e.sgId) state.lastKey.set(e.sgId, e);
      }
    }
    if (state.keyUpdates.length > MAX_KEY_UPDATES)
      state.keyUpdates.splice(0, state.keyUpdates.length - MAX_KEY_UPDATES);
    if (page.nextAfterSeq === null) break;
  }
}

async function refresh() {
  if (!state.token) return;
  if (state.refreshing) {
    state.again = true;
    return;
  }
  state.refreshing = true;
  const gen = state.liveGen;
  try {
    const [pns, groups, identities] = await Promise.all([
      api('GET', '/pns'),
      api('GET', '/service-groups'),
      api('GET', '/identities'),
    ]);
    const statuses = await Promise.all(
      groups.map((g) => api('GET', `/service-groups/${encodeURIComponent(g.sgId)}/key`).catch(() => null)),
    );
    await loadAudit();
    state.groups = groups;
    state.keyStatus = new Map();
    statuses.forEach((s, i) => {
      const g = groups[i];
      if (s && g) state.keyStatus.set(g.sgId, s);
    });
    state.pns = pns;
    state.pneIds = identities.filter((i) => i.role === 'pne' && i.revokedAt === null).map((i) => i.id);
    state.refreshedAt = Date.now();
    // Fresh data from after the stream came back: no longer stale.
    if (state.stale && state.live && gen === state.liveGen) setStale(false);
    renderPns(pns);
    renderGroups();
    renderKeyUpdates();
    $('pne-ids').replaceChildren(...state.pneIds.map((id) => h('option', { value: id }, nameOf(id))));
    renderAuditChoices(identities);
    // The newest page follows the log; an older page stays where the operator is.
    if (auditView.before === null) await loadAuditPage();
    else renderAudit();
  } catch (e) {
    if (state.token) toast(e instanceof Error ? e.message : String(e));
  } finally {
    state.refreshing = false;
    if (state.again) {
      state.again = false;
      scheduleRefresh(0);
    }
  }
}

function scheduleRefresh(delay = 100) {
  clearTimeout(state.refreshTimer);
  state.refreshTimer = setTimeout(refresh, delay);
}

// ------------------------------------------------------------------ live events (SSE over fetch)

function setLive(on) {
  state.live = on;
  const el = $('live');
  el.textContent = on ? 'live' : 'offline';
  el.className = `pill ${on ? 'on' : 'off'}`;
}

/**
 * Stale: the live connection dropped, so changes are no longer seen. The page says so in a banner, dims the data
 * and shows every online state as unknown, until the stream is back and a refresh made after it succeeded.
 */
function setStale(on) {
  if (state.stale === on) return;
  state.stale = on;
  if (on) state.staleSince = Date.now();
  document.body.classList.toggle('stale', on);
  const b = $('stale');
  b.hidden = !on;
  b.textContent = on
    ? `Live connection lost at ${new Date(state.staleSince).toLocaleTimeString()}: the data may be stale ` +
      `(last refreshed ${fmtTime(state.refreshedAt)}). Online states are unknown until it is back. Reconnecting…`
    : '';
  renderPns(state.pns);
  renderGroups();
}

/** Waits `ms`, or less if the browser comes back online or the session ends. */
function pause(ms) {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(t);
      state.wake = null;
      resolve();
    };
    const t = setTimeout(done, ms);
    state.wake = done;
  });
}

window.addEventListener('online', () => state.wake?.());

async function streamEvents(session) {
  let backoff = 500;
  while (state.token && session === state.session) {
    const ctl = new AbortController();
    state.stream = ctl;
    try {
      const res = await fetch(`${API}/events`, {
        headers: { authorization: `Bearer ${state.token}`, accept: 'text/event-stream' },
        signal: ctl.signal,
      });
      if (res.status === 401) {
        signOut('The token was refused.');
        return;
      }
      if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let i = buf.indexOf('\n\n');
        while (i >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          onEventBlock(block);
          i = buf.indexOf('\n\n');
        }
        backoff = 500;
      }
    } catch {
      // aborted or network error: retry below
    }
    setLive(false);
    if (!state.token || ctl.signal.aborted || session !== state.session) return;
    setStale(true);
    await pause(backoff);
    backoff = Math.min(backoff * 2, 5000);
  }
}

function onEventBlock(block) {
  let event = 'message';
  for (const line of block.split('\n')) {
    if (line.startsWith('event:')) event = line.slice(6).trim();
  }
  if (event === 'hello') {
    setLive(true);
    state.liveGen++;
    scheduleRefresh(0);
  } else if (event === 'change') {
    scheduleRefresh(100);
  }
}

// ------------------------------------------------------------------ session

function signIn(token) {
  state.token = token;
  sessionStorage.setItem(TOKEN_KEY, token);
  $('login').hidden = true;
  $('app').hidden = false;
  $('logout').hidden = false;
  $('login-error').textContent = '';
  state.session++;
  refresh();
  streamEvents(state.session);
}

function signOut(message) {
  state.token = '';
  sessionStorage.removeItem(TOKEN_KEY);
  state.session++;
  state.stream?.abort();
  state.wake?.();
  setStale(false);
  clearEnrollToken();
  state.readOnly = false;
  $('scope').hidden = true;
  document.body.classList.remove('read-only');
  toast('');
  note('');
  state.keyUpdates = [];
  state.lastKey = new Map();
  state.actors = new Set();
  state.labels = new Map();
  state.auditCursor = 0;
  auditView.filters = {};
  auditView.before = null;
  auditView.history = [];
  auditView.page = null;
  $('audit-filters').reset();
  $('app').hidden = true;
  $('logout').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message || '';
  setLive(false);
}

$('login-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const t = $('token').value.trim();
  $('token').value = '';
  if (t) signIn(t);
});
$('logout').addEventListener('click', () => signOut(''));
$('create-sg').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const f = ev.target;
  const field = (n) => f.elements.namedItem(n);
  const body = {
    name: field('name').value.trim(),
    joinPolicy: field('joinPolicy').value,
    suite: field('suite').value,
  };
  if (field('sourceAuth').checked) body.sourceAuth = true;
  if (!field('updateOnJoin').checked) body.updateOnJoin = false;
  const members = field('members')
    .value.split(/[\s,]+/)
    .filter(Boolean);
  if (members.length > 0) body.members = members;
  act(async () => {
    await api('POST', '/service-groups', body);
    f.reset();
  });
});

if (state.token) signIn(state.token);
