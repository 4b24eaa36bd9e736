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

const fmtTime = (ms) => (ms ? new Date(ms).toLocaleString() : '—');
const short = (id) => (typeof id === 'string' ? id.replace(/^urn:cpns:(gw|pne):/, '$1:').slice(0, 16) : '');
const pill = (on) => h('span', { class: `pill ${on ? 'on' : 'off'}` }, on ? 'online' : 'offline');

// ------------------------------------------------------------------ state

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || '',
  groups: [],
  keyStatus: new Map(),
  keyUpdates: [],
  auditCursor: 0,
  stream: null,
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

async function act(fn) {
  toast('');
  try {
    await fn();
  } catch (e) {
    toast(e instanceof Error ? e.message : String(e));
  }
  scheduleRefresh(0);
}

// ------------------------------------------------------------------ rendering

function renderPns(pns) {
  const tbody = $('pns').tBodies[0];
  const rows = [];
  for (const pn of pns) {
    rows.push(
      h(
        'tr',
        { class: 'gw', 'data-gw-id': pn.gwId },
        h('td', { class: 'id', title: pn.gwId }, pn.gwId),
        h('td', {}, pill(pn.online)),
        h('td', {}, fmtTime(pn.lastSeen)),
        h('td', {}, `${pn.pnes.length} PNE${pn.pnes.length === 1 ? '' : 's'}`),
        h('td', {}, revokeButton(pn.gwId)),
      ),
    );
    for (const p of pn.pnes) {
      rows.push(
        h(
          'tr',
          { class: 'pne', 'data-pne-id': p.pneId },
          h('td', { class: 'id', title: p.pneId }, p.pneId),
          h('td', {}, pill(p.online)),
          h('td', {}, fmtTime(p.lastSeen)),
          h('td', {}, p.media.join(', ')),
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

function memberRow(sg, m, currentEpoch) {
  const behind =
    m.lag > 0
      ? h(
          'span',
          { class: 'behind' },
          `behind by ${m.lag} (has ${m.ackedEpoch ?? 'none'}, current ${currentEpoch})`,
        )
      : h('span', { class: 'ok' }, `up to date (epoch ${m.ackedEpoch})`);
  return h(
    'tr',
    { 'data-pne-id': m.pneId },
    h('td', { class: 'id', title: m.pneId }, m.pneId),
    h('td', {}, pill(m.online)),
    h('td', { class: 'id', title: m.gwId ?? '' }, m.gwId ? short(m.gwId) : '—'),
    h('td', { 'data-testid': 'member-key' }, behind),
    h('td', {}, m.method ?? '—'),
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

function renderGroups() {
  const cards = state.groups.map((sg) => {
    const ks = state.keyStatus.get(sg.sgId);
    const epoch = ks ? ks.currentEpoch : sg.currentEpoch;
    const cur = ks?.current;
    const members = ks ? ks.members : [];
    return h(
      'article',
      { class: 'sg', 'data-sg-id': sg.sgId, 'data-sg-name': sg.name },
      h(
        'div',
        { class: 'head' },
        h('h3', {}, sg.name),
        h('span', { class: 'id', title: sg.sgId }, sg.sgId),
        h('span', {}, 'epoch ', h('span', { class: 'epoch', 'data-testid': 'epoch' }, String(epoch))),
        cur ? h('span', { class: 'muted' }, `key ${cur.reason}, ${fmtTime(cur.createdAt)}`) : null,
        h(
          'span',
          { class: 'muted' },
          `${sg.joinPolicy} · ${sg.suite}${sg.sourceAuth ? ' · signed' : ''}` +
            (sg.updateOnJoin === false
              ? ' · no update on join (joiners can read this epoch)'
              : ' · update on join') +
            (sg.rekeyIntervalSec ? ` · update every ${sg.rekeyIntervalSec}s` : ''),
        ),
        ks && ks.lagging > 0
          ? h('span', { class: 'behind', 'data-testid': 'lagging' }, `${ks.lagging} behind`)
          : null,
        h(
          'button',
          {
            type: 'button',
            'data-action': 'rekey',
            onclick: () => act(() => api('POST', `/service-groups/${encodeURIComponent(sg.sgId)}/rekey`)),
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
              if (!confirm(`Delete Service Group ${sg.name}?`)) return;
              act(() => api('DELETE', `/service-groups/${encodeURIComponent(sg.sgId)}`));
            },
          },
          'Delete',
        ),
      ),
      members.length === 0
        ? h('p', { class: 'muted' }, 'No members.')
        : h(
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
                h('th', {}, 'GW'),
                h('th', {}, 'Group Key'),
                h('th', {}, 'Delivery'),
                h('th', {}),
              ),
            ),
            h(
              'tbody',
              {},
              members.map((m) => memberRow(sg, m, epoch)),
            ),
          ),
    );
  });
  $('groups').replaceChildren(...cards);
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
        h('td', {}, fmtTime(e.at)),
        h('td', { title: e.sgId ?? '' }, names.get(e.sgId) ?? short(e.sgId ?? '')),
        h('td', {}, e.epoch ?? '—'),
        h('td', {}, e.action),
        h('td', {}, e.reason ?? '—'),
        h('td', { class: 'id', title: e.actor }, short(e.actor) || e.actor),
      ),
    );
  $('key-updates').tBodies[0].replaceChildren(...rows);
}

// ------------------------------------------------------------------ data

async function loadAudit() {
  for (let pages = 0; pages < 20; pages++) {
    const page = await api('GET', `/audit?afterSeq=${state.auditCursor}&limit=1000`);
    for (const e of page.entries) {
      state.auditCursor = Math.max(state.auditCursor, e.seq);
      if (KEY_ACTIONS.has(e.action)) state.keyUpdates.push(e);
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
  try {
    const [pns, groups] = await Promise.all([api('GET', '/pns'), api('GET', '/service-groups')]);
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
    renderPns(pns);
    renderGroups();
    renderKeyUpdates();
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
  const el = $('live');
  el.textContent = on ? 'live' : 'offline';
  el.className = `pill ${on ? 'on' : 'off'}`;
}

async function streamEvents() {
  let backoff = 500;
  while (state.token) {
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
    if (!state.token || ctl.signal.aborted) return;
    await new Promise((r) => setTimeout(r, backoff));
    backoff = Math.min(backoff * 2, 10_000);
  }
}

function onEventBlock(block) {
  let event = 'message';
  for (const line of block.split('\n')) {
    if (line.startsWith('event:')) event = line.slice(6).trim();
  }
  if (event === 'hello') {
    setLive(true);
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
  refresh();
  streamEvents();
}

function signOut(message) {
  state.token = '';
  sessionStorage.removeItem(TOKEN_KEY);
  state.stream?.abort();
  state.keyUpdates = [];
  state.auditCursor = 0;
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
