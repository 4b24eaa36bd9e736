/**
 * End to end: the web console in headless Chromium (Debian's /usr/bin/chromium driven by playwright-core)
 * against a real CPNS Server with an enrolled PN Gateway, over HTTPS.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, chromium, type Locator, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrollAt, PnGateway } from '../../src/gateway/index.js';
import { PneClient } from '../../src/pne/index.js';
import { enrolled, randomPne, type Stack, startStack } from '../admin/fixture.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARTIFACTS = join(process.cwd(), 'test-artifacts');

let s: Stack;
let browser: Browser;
let page: Page;
let pne: PneClient | undefined;
let gw2: PnGateway | undefined;
let pne2: PneClient | undefined;
const pageErrors: string[] = [];
/** The confirmation questions the page asked, in order; `dismissNext` answers the next one "Cancel". */
const dialogs: string[] = [];
let dismissNext = false;

const connectPne = () =>
  PneClient.connect({
    gwUrl: s.gw!.url,
    credentials: s.pneCredentials!,
    heartbeat: false,
    reconnect: { initialMs: 30, maxMs: 300 },
  });

/** A DOM property of an element, read in the page (this tsconfig has no DOM types). */
const domProp = (l: Locator, path: string[]) =>
  l.evaluate((e, p) => p.reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], e), path);

/** pne:1f2e3d4c: how the console shows an identity (the full URN on hover and copy). */
const shortId = (id: string) => id.replace(/^urn:cpns:(gw|pne):([0-9a-f]{8}).*$/, '$1:$2');

async function api(method: 'GET' | 'POST' | 'DELETE' | 'PATCH', url: string, payload?: object) {
  const r = await s.app.inject({
    method,
    url,
    headers: { authorization: `Bearer ${s.token}` },
    ...(payload ? { payload } : {}),
  });
  return r.json();
}

const card = (name: string) => page.locator(`article.sg[data-sg-name="${name}"]`);

describe.skipIf(!existsSync(CHROMIUM))('web console (headless Chromium)', () => {
  let sgId: string;
  const guest = randomPne();

  beforeAll(async () => {
    s = await startStack({ withGateway: true, serverWired: true });
    // Only enrolled PNEs can be members (docs/operator.md): the guest is recorded as enrolled.
    await enrolled(s, guest);
    const g = await api('POST', '/api/v1/service-groups', {
      name: 'kitchen',
      members: [s.pneIdentity!, guest],
      rekeyIntervalSec: 86_400,
    });
    sgId = g.sgId;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    const context = await browser.newContext({
      ignoreHTTPSErrors: true,
      viewport: { width: 1200, height: 900 },
    });
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: s.url });
    page = await context.newPage();
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') pageErrors.push(m.text());
    });
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      if (dismissNext) {
        dismissNext = false;
        void d.dismiss();
      } else void d.accept();
    });
  });

  afterAll(async () => {
    await pne?.close();
    await pne2?.close();
    await gw2?.close();
    await browser?.close();
    await s?.close();
  });

  it('signs in with the token and shows the inventory and the Service Group key state', async () => {
    await page.goto(`${s.url}/console/`);
    await page.locator('#login').waitFor();
    await page.fill('#token', s.token);
    await page.click('#login-form button[type=submit]');
    await page.locator('#live').filter({ hasText: 'live' }).waitFor();
    await card('kitchen').waitFor();
    expect(await card('kitchen').getByTestId('epoch').textContent()).toBe('1');
    await page.locator(`tr.gw[data-gw-id="${s.gw!.identity}"]`).waitFor();
    // Members are behind: no PNE acknowledged the key (they are not attached).
    const rows = card('kitchen').locator('tbody tr');
    expect(await rows.count()).toBe(2);
    expect(await card('kitchen').getByTestId('member-key').first().textContent()).toContain('behind by 1');
    // The epoch, when and why it began, and who made it (the audit's actor of the token used).
    const changed = await card('kitchen').getByTestId('epoch-change').textContent();
    expect(changed).toContain('Epoch 1 since');
    expect(changed).toContain('create (Service Group created), by operator:root');
    // Neither member is attached: both listed under "Not attached", both behind.
    const none = card('kitchen').locator('[data-testid=gw-delivery][data-gw-id=none]');
    expect(await none.getByTestId('gw-acked').textContent()).toBe('0/2 acked epoch 1');
    expect(await none.getByTestId('laggards').textContent()).toContain(`${shortId(guest)} by 1`);
    await page.locator('#key-updates tbody tr').filter({ hasText: 'create' }).first().waitFor();
    // The token stays in this tab's sessionStorage only, never in the URL or localStorage.
    expect(page.url()).not.toContain(s.token);
    expect(await page.evaluate('localStorage.length')).toBe(0);
    expect(await page.evaluate("sessionStorage.getItem('cpns.adminToken')")).toBe(s.token);
  });

  it('updates live (SSE) when the state changes elsewhere', async () => {
    await api('POST', `/api/v1/service-groups/${sgId}/rekey`);
    await card('kitchen').getByTestId('epoch').filter({ hasText: /^2$/ }).waitFor({ timeout: 5000 });
  });

  it('forces a key update from the console and sees the new epoch and its reason', async () => {
    await card('kitchen').locator('button[data-action=rekey]').click();
    await card('kitchen').getByTestId('epoch').filter({ hasText: /^3$/ }).waitFor({ timeout: 5000 });
    await page.locator('#key-updates tbody tr').filter({ hasText: 'operator' }).first().waitFor();
    await card('kitchen')
      .getByTestId('epoch-change')
      .filter({ hasText: 'Epoch 3 since' })
      .filter({ hasText: 'operator (forced by an operator), by operator:root' })
      .waitFor({ timeout: 5000 });
  });

  it('removes a member from the console: the key is updated at once', async () => {
    await card('kitchen').locator(`tr[data-pne-id="${guest}"] button[data-action=remove-member]`).click();
    await card('kitchen').getByTestId('epoch').filter({ hasText: /^4$/ }).waitFor({ timeout: 5000 });
    await card('kitchen').locator(`tr[data-pne-id="${guest}"]`).waitFor({ state: 'detached' });
    await page.locator('#key-updates tbody tr').filter({ hasText: 'remove' }).first().waitFor();
    const status = await api('GET', `/api/v1/service-groups/${sgId}/key`);
    expect(status.currentEpoch).toBe(4);
    expect(status.current.reason).toBe('remove');
  });

  it('shows a real PNE online and caught up once it acks, behind after a key update until it acks', async () => {
    const row = card('kitchen').locator(`tr[data-pne-id="${s.pneIdentity}"]`);
    const key = row.getByTestId('member-key');
    await key.filter({ hasText: 'behind by 4 (has none, current 4)' }).waitFor({ timeout: 5000 });
    // The PNE attaches to its GW: the server delivers the current key, the PNE acks through the GW, and the
    // server's own events (pn.change, key.ack) refresh the page.
    pne = await connectPne();
    await pne.waitForKey(sgId, 4);
    await key.filter({ hasText: 'up to date (epoch 4)' }).waitFor({ timeout: 5000 });
    await row.locator('.pill.on').waitFor({ timeout: 5000 });
    expect(await row.textContent()).toMatch(/unicast|broadcast/);
    // Offline, it cannot ack the next key: the page shows it behind on the new epoch...
    await pne.close();
    await row.locator('.pill.off').waitFor({ timeout: 5000 });
    await api('POST', `/api/v1/service-groups/${sgId}/rekey`);
    await key.filter({ hasText: 'behind by 1 (has 4, current 5)' }).waitFor({ timeout: 5000 });
    // ...until it comes back: catch-up delivery, ack, caught up.
    pne = await connectPne();
    await pne.waitForKey(sgId, 5);
    await key.filter({ hasText: 'up to date (epoch 5)' }).waitFor({ timeout: 5000 });
    await row.locator('.pill.on').waitFor({ timeout: 5000 });
    const status = await api('GET', `/api/v1/service-groups/${sgId}/key`);
    expect(status.lagging).toBe(0);
  });

  it('shows the delivery per GW, members under their GW, laggards and the ack latency chart', async () => {
    // A second PN: its own GW (enrolled with a one-time token) and a PNE enrolled through it, attached.
    const creds = await PnGateway.enroll({
      enrollUrl: s.server.enrollUrl,
      caPem: s.server.caPem,
      token: await s.server.admin.createToken('gw', 600),
    });
    gw2 = await PnGateway.start({ serverUrl: s.server.url, credentials: creds, heartbeat: false });
    const pne2Creds = await enrollAt(
      gw2.enrollUrl,
      s.server.caPem,
      await s.server.admin.createToken('pne', 600),
      'pne',
      'gw',
    );
    pne2 = await PneClient.connect({ gwUrl: gw2.url, credentials: pne2Creds, heartbeat: false });
    await api('POST', `/api/v1/service-groups/${sgId}/members`, { pneId: pne2Creds.identity });
    await pne2.waitForKey(sgId, 6);
    await pne!.waitForKey(sgId, 6);
    // A member that never attached: it lags.
    const absent = await enrolled(s, randomPne());
    await api('POST', `/api/v1/service-groups/${sgId}/members`, { pneId: absent });
    await pne2.waitForKey(sgId, 7);
    await pne!.waitForKey(sgId, 7);
    const c = card('kitchen');
    await c
      .getByTestId('delivery-summary')
      .filter({ hasText: 'Epoch 7: 2 of 3 members acked' })
      .waitFor({ timeout: 5000 });
    const status = await api('GET', `/api/v1/service-groups/${sgId}/key`);
    expect(status.currentEpoch).toBe(7);
    expect(status.current.reason).toBe('join');
    expect(await c.getByTestId('delivery-summary').textContent()).toContain('; 1 behind');
    expect(await c.getByTestId('epoch-change').textContent()).toContain(
      'join (a member joined), by operator:root',
    );
    const byId = new Map<string, { method: string; ackedAt: number }>(
      status.members.map((m: { pneId: string; method: string; ackedAt: number }) => [m.pneId, m]),
    );
    // Each GW's block lists its own member, acked by the method the API reports.
    for (const [gwId, pneId] of [
      [s.gw!.identity, s.pneIdentity!],
      [gw2.identity, pne2Creds.identity],
    ] as const) {
      const block = c.locator(`[data-testid=gw-delivery][data-gw-id="${gwId}"]`);
      expect(await block.locator('tbody tr').count()).toBe(1);
      await block.locator(`tr[data-pne-id="${pneId}"] .pill.on`).waitFor();
      expect(await block.getByTestId('gw-acked').textContent()).toBe('1/1 acked epoch 7');
      const m = byId.get(pneId)!;
      expect(['unicast', 'broadcast', 'fallback']).toContain(m.method);
      expect(await block.getByTestId('gw-methods').textContent()).toContain(`${m.method} 1`);
      expect(await block.getByTestId('laggards').count()).toBe(0);
    }
    // The absent member is under "Not attached", behind by 7 (it has no epoch at all).
    const none = c.locator('[data-testid=gw-delivery][data-gw-id=none]');
    expect(await none.locator(`tr[data-pne-id="${absent}"]`).getByTestId('member-key').textContent()).toBe(
      'behind by 7 (has none, current 7)',
    );
    expect(await none.getByTestId('gw-acked').textContent()).toBe('0/1 acked epoch 7');
    expect(await none.getByTestId('laggards').textContent()).toBe(`Behind: ${shortId(absent)} by 7`);
    // The chart: a bar per member that acked epoch 7, its length the ack time minus the key's creation time.
    const chart = c.getByTestId('ack-chart');
    expect(await chart.locator('figcaption').textContent()).toContain('Ack latency of epoch 7');
    const bars = chart.locator('g.row[data-latency-ms]');
    expect(await bars.count()).toBe(2);
    for (const pneId of [s.pneIdentity!, pne2Creds.identity]) {
      const bar = chart.locator(`g.row[data-pne-id="${pneId}"]`);
      const ms = byId.get(pneId)!.ackedAt - status.current.createdAt;
      expect(ms).toBeGreaterThanOrEqual(0);
      expect(await bar.getAttribute('data-latency-ms')).toBe(String(ms));
      expect(Number(await bar.locator('rect').getAttribute('width'))).toBeGreaterThan(0);
    }
    expect(await chart.locator(`g.row.missing[data-pne-id="${absent}"]`).textContent()).toContain(
      'not acked (behind by 7)',
    );
    // The URN is on hover of its short form.
    expect(await c.locator(`button.idchip[data-id="${absent}"]`).first().getAttribute('title')).toBe(
      `${absent} (click to copy)`,
    );
    mkdirSync(ARTIFACTS, { recursive: true });
    await c.screenshot({ path: join(ARTIFACTS, 'console-delivery.png') });
  });

  it('says the data may be stale when the live connection drops; online states unknown until it is back', async () => {
    const banner = page.getByTestId('stale');
    expect(await banner.isVisible()).toBe(false);
    const row = card('kitchen').locator(`tr[data-pne-id="${s.pneIdentity}"]`);
    await row.locator('.pill.on').waitFor();
    const errorsBefore = pageErrors.length;
    // The browser loses the network and the server drops the connections (the event stream among them).
    await page.context().setOffline(true);
    s.app.server.closeAllConnections();
    await banner.waitFor({ state: 'visible', timeout: 5000 });
    expect(await banner.textContent()).toContain('the data may be stale');
    expect(await page.locator('#live').textContent()).toBe('offline');
    expect(await page.evaluate("document.body.classList.contains('stale')")).toBe(true);
    // Devices are no longer shown online: their state is unknown, the last known one on hover.
    expect(await page.locator('#app .pill.on').count()).toBe(0);
    expect(await row.locator('.pill').textContent()).toBe('unknown');
    expect(await row.locator('.pill').getAttribute('title')).toBe('last known: online');
    expect(await page.locator(`tr.gw[data-gw-id="${s.gw!.identity}"] .pill`).textContent()).toBe('unknown');
    await page.screenshot({ path: join(ARTIFACTS, 'console-stale.png'), fullPage: true });
    // Back online: the stream reconnects, the page refreshes, the banner goes.
    await page.context().setOffline(false);
    await banner.waitFor({ state: 'hidden', timeout: 10_000 });
    await row.locator('.pill.on').waitFor({ timeout: 5000 });
    expect(await page.locator('#live').textContent()).toBe('live');
    expect(await page.evaluate("document.body.classList.contains('stale')")).toBe(false);
    // The failed reconnects were logged by the browser as network errors; nothing else.
    const during = pageErrors.splice(errorsBefore);
    for (const e of during) expect(e).toMatch(/net::ERR_|Failed to load resource/);
  });

  it('adds a member from the console', async () => {
    const newcomer = await enrolled(s, randomPne());
    const c = card('kitchen');
    await c.locator('form[data-testid=add-member] input[name=pneId]').fill(newcomer);
    await c.locator('button[data-action=add-member]').click();
    await c.locator(`[data-gw-id=none] tr[data-pne-id="${newcomer}"]`).waitFor({ timeout: 5000 });
    await c.getByTestId('epoch').filter({ hasText: /^8$/ }).waitFor({ timeout: 5000 });
    expect(await page.locator('#note').textContent()).toContain(`${newcomer} added to kitchen`);
    const members = await api('GET', `/api/v1/service-groups/${sgId}/members`);
    expect(members.map((m: { pneId: string }) => m.pneId)).toContain(newcomer);
    // A malformed id is refused by the form before any request.
    await c.locator('form[data-testid=add-member] input[name=pneId]').fill('not-a-pne');
    await c.locator('button[data-action=add-member]').click();
    const input = c.locator('form[data-testid=add-member] input[name=pneId]');
    expect(await domProp(input, ['validity', 'patternMismatch'])).toBe(true);
    await c.locator('form[data-testid=add-member] input[name=pneId]').fill('');
  });

  it('changes the policy after a confirmation that lists each change; Cancel changes nothing', async () => {
    const c = card('kitchen');
    const form = c.getByTestId('policy-form');
    await c.locator('summary[data-action=policy]').click();
    await form.waitFor();
    // The form starts from the SG's policy.
    expect(await form.locator('select[name=joinPolicy]').inputValue()).toBe('invite');
    expect(await form.locator('input[name=rekeyIntervalSec]').inputValue()).toBe('86400');
    expect(await form.locator('input[name=defaultDelivery]').isChecked()).toBe(true);
    expect(await form.locator('input[name=ackTimeoutMs]').isDisabled()).toBe(true);
    // Cancel: nothing sent.
    await form.locator('select[name=joinPolicy]').selectOption('open');
    dismissNext = true;
    const n = dialogs.length;
    await form.locator('button[data-action=apply-policy]').click();
    expect(dialogs.length).toBe(n + 1);
    expect((await api('GET', `/api/v1/service-groups/${sgId}`)).joinPolicy).toBe('invite');
    // Every kind of change at once.
    await form.locator('input[name=rekeyIntervalSec]').fill('3600');
    await form.locator('input[name=sourceAuth]').check();
    await form.locator('input[name=defaultDelivery]').uncheck();
    await form.locator('input[name=broadcast]').uncheck();
    await form.locator('input[name=ackTimeoutMs]').fill('2000');
    await c.locator('.tools').screenshot({ path: join(ARTIFACTS, 'console-policy.png') });
    await form.locator('button[data-action=apply-policy]').click();
    await c.getByTestId('policy').filter({ hasText: 'join open' }).waitFor({ timeout: 5000 });
    const asked = dialogs.at(-1)!;
    expect(asked).toContain('Change the policy of kitchen?');
    expect(asked).toContain('join policy: invite → open (any enrolled PNE may join)');
    expect(asked).toContain('periodic update: every 1 d → every 1 h');
    expect(asked).toContain('source authentication: off → on (unsigned messages are refused)');
    expect(asked).toContain('delivery: server-wide → unicast only, fallback after 2000 ms');
    expect(asked).not.toContain('update key on join');
    const g = await api('GET', `/api/v1/service-groups/${sgId}`);
    expect(g).toMatchObject({
      joinPolicy: 'open',
      rekeyIntervalSec: 3600,
      sourceAuth: true,
      updateOnJoin: true,
      deliveryPolicy: { broadcast: false, broadcastThreshold: 3, ackTimeoutMs: 2000 },
    });
    const policy = await c.getByTestId('policy').textContent();
    expect(policy).toContain('source authentication');
    expect(policy).toContain('update every 1 h');
    expect(policy).toContain('delivery: unicast only, fallback after 2000 ms');
    expect(await domProp(c.locator('details.policy'), ['open'])).toBe(false);
    const audit = await api('GET', `/api/v1/audit?sgId=${sgId}&action=sg.policy`);
    expect(audit.entries).toHaveLength(1);
    expect(audit.entries[0].actor).toBe('operator:root');
  });

  it('creates a labelled enrollment token, shown once with a copy button, that enrolls a device', async () => {
    await page.selectOption('#enroll-form select[name=role]', 'pne');
    await page.fill('#enroll-form input[name=label]', 'hall sensor');
    await page.click('#enroll-form button[type=submit]');
    const result = page.getByTestId('enroll-result');
    await result.waitFor({ state: 'visible', timeout: 5000 });
    expect(await result.textContent()).toContain('Enrollment token for a PNE “hall sensor”');
    expect(await result.textContent()).toContain('Shown once');
    const token = (await page.getByTestId('enroll-token').textContent())!;
    expect(token).toMatch(/^[A-Za-z0-9_-]{32}$/);
    await page
      .locator('#enroll-section, #enroll')
      .screenshot({ path: join(ARTIFACTS, 'console-enroll.png') });
    await page.click('#enroll-copy');
    expect(await page.evaluate('navigator.clipboard.readText()')).toBe(token);
    // The label went with the token (audited), never the token itself.
    const audit = await api('GET', '/api/v1/audit?action=token.create');
    expect(audit.entries.at(-1)).toMatchObject({ subject: 'pne', detail: { label: 'hall sensor' } });
    expect(JSON.stringify(audit)).not.toContain(token);
    // Done: the page forgets it.
    await page.click('#enroll-done');
    expect(await result.isVisible()).toBe(false);
    expect(await page.content()).not.toContain(token);
    // It works, once: a PNE enrolls with it through a GW; its identity carries the label into the audit log.
    const creds = await enrollAt(gw2!.enrollUrl, s.server.caPem, token, 'pne', 'gw');
    expect(creds.identity).toMatch(/^urn:cpns:pne:/);
    await expect(enrollAt(gw2!.enrollUrl, s.server.caPem, token, 'pne', 'gw')).rejects.toThrow();
    const enrolledEntry = await api(
      'GET',
      `/api/v1/audit?action=identity.enroll&subject=${encodeURIComponent(creds.identity)}`,
    );
    expect(enrolledEntry.entries).toEqual([
      expect.objectContaining({ actor: 'server', detail: { label: 'hall sensor' } }),
    ]);
    // The console names the device by its label, the URN on hover.
    await page.reload();
    await page.locator('#live').filter({ hasText: 'live' }).waitFor();
    const chip = page.locator(`#audit-log td.subject button.idchip[data-id="${creds.identity}"]`).first();
    await chip.waitFor({ timeout: 5000 });
    expect(await chip.textContent()).toBe('hall sensor');
    expect(await chip.getAttribute('title')).toBe(`hall sensor: ${creds.identity} (click to copy)`);
    await chip.click();
    expect(await page.evaluate('navigator.clipboard.readText()')).toBe(creds.identity);
  });

  it('with a read-only token: shows the data, and says a change is refused because the token is read-only', async () => {
    const created = await api('POST', '/api/v1/admin-tokens', { name: 'viewer', scope: 'read' });
    await page.click('#logout');
    await page.fill('#token', created.token);
    await page.click('#login-form button[type=submit]');
    await page.locator('#live').filter({ hasText: 'live' }).waitFor();
    await card('kitchen').getByTestId('epoch').filter({ hasText: /^8$/ }).waitFor({ timeout: 5000 });
    const errorsBefore = pageErrors.length;
    await card('kitchen').locator('button[data-action=rekey]').click();
    await page.locator('#toast').filter({ hasText: 'read-only' }).waitFor({ timeout: 5000 });
    expect(await page.locator('#toast').textContent()).toBe(
      'This token is read-only (scope read): it can look but not change anything. ' +
        'Sign in with a token of scope operator to make changes.',
    );
    expect(await page.getByTestId('scope').isVisible()).toBe(true);
    expect(await page.getByTestId('scope').textContent()).toBe('read-only');
    expect((await api('GET', `/api/v1/service-groups/${sgId}/key`)).currentEpoch).toBe(8);
    await page.screenshot({ path: join(ARTIFACTS, 'console-read-only.png') });
    // The browser logs the 403 reply; nothing else went wrong.
    for (const e of pageErrors.splice(errorsBefore)) expect(e).toMatch(/403/);
    // Back to the operator's token: no longer read-only.
    await page.click('#logout');
    await page.fill('#token', s.token);
    await page.click('#login-form button[type=submit]');
    await page.locator('#live').filter({ hasText: 'live' }).waitFor();
    await card('kitchen').waitFor();
    expect(await page.getByTestId('scope').isVisible()).toBe(false);
    expect(await page.locator('#toast').textContent()).toBe('');
  });

  it('shows the audit log newest first, paged, filtered by SG, identity, action and actor', async () => {
    const view = page.locator('#audit');
    const seqsShown = async () =>
      view
        .locator('#audit-log tbody tr')
        .evaluateAll((rows) => rows.map((r) => Number(r.getAttribute('data-seq'))));
    const apiSeqs = async (q: string) =>
      (await api('GET', `/api/v1/audit?order=desc&limit=20${q}`)).entries.map((e: { seq: number }) => e.seq);
    await view.scrollIntoViewIfNeeded();
    // The newest page: what the API lists newest first, in that order.
    const newest = await apiSeqs('');
    expect(newest).toHaveLength(20);
    await expect.poll(seqsShown, { timeout: 5000 }).toEqual(newest);
    expect(await view.getByTestId('audit-page').textContent()).toBe('Page 1, newest first: 20 entries');
    expect(await view.locator('#audit-newer').isDisabled()).toBe(true);
    // Older, then back.
    await view.locator('#audit-older').click();
    await expect.poll(seqsShown, { timeout: 5000 }).toEqual(await apiSeqs(`&beforeSeq=${newest.at(-1)}`));
    expect(await view.getByTestId('audit-page').textContent()).toContain('Page 2, newest first');
    await view.locator('#audit-newer').click();
    await expect.poll(seqsShown, { timeout: 5000 }).toEqual(newest);
    // SG and action: the key updates of kitchen, newest first (epochs 8 down to 2; epoch 1 was key.create).
    await view.locator('select[name=sgId]').selectOption({ label: 'kitchen' });
    await view.locator('select[name=action]').selectOption('key.update');
    await view.locator('button[data-action=audit-filter]').click();
    await expect
      .poll(() => view.locator('#audit-log tbody td.epoch').allTextContents(), { timeout: 5000 })
      .toEqual(['8', '7', '6', '5', '4', '3', '2']);
    for (const a of await view.locator('#audit-log tbody td.action').allTextContents())
      expect(a).toBe('key.update');
    for (const g of await view.locator('#audit-log tbody td.sg').allTextContents()) expect(g).toBe('kitchen');
    expect(await view.locator('#audit-older').isDisabled()).toBe(true);
    // Actor: the policy change made with the root token.
    await view.locator('select[name=action]').selectOption('sg.policy');
    await view.locator('input[name=actor]').fill('operator:root');
    await view.locator('button[data-action=audit-filter]').click();
    await expect.poll(() => view.locator('#audit-log tbody tr').count(), { timeout: 5000 }).toBe(1);
    expect(await view.locator('#audit-log tbody td.actor').textContent()).toBe('operator:root');
    expect(await view.locator('#audit-log tbody td.detail').textContent()).toContain('"joinPolicy":"open"');
    // Identity: every entry about the attached PNE (any SG, any action), as the API filters them.
    await view.locator('button[data-action=audit-clear]').click();
    await view.locator('input[name=subject]').fill(s.pneIdentity!);
    await view.locator('button[data-action=audit-filter]').click();
    const about = await apiSeqs(`&subject=${encodeURIComponent(s.pneIdentity!)}`);
    expect(about.length).toBeGreaterThan(1);
    await expect.poll(seqsShown, { timeout: 5000 }).toEqual(about);
    for (const b of await view.locator('#audit-log tbody td.subject button.idchip').all())
      expect(await b.getAttribute('data-id')).toBe(s.pneIdentity);
    expect(await view.getByTestId('audit-page').textContent()).toContain('filtered');
    // No match: said so.
    await view.locator('input[name=actor]').fill('operator:nobody');
    await view.locator('button[data-action=audit-filter]').click();
    await view.locator('#audit-empty').waitFor({ state: 'visible', timeout: 5000 });
    await view.locator('input[name=actor]').fill('');
    await view.locator('button[data-action=audit-filter]').click();
    await expect.poll(seqsShown, { timeout: 5000 }).toEqual(about);
    await view.screenshot({ path: join(ARTIFACTS, 'console-audit.png') });
    await view.locator('button[data-action=audit-clear]').click();
    await expect.poll(seqsShown, { timeout: 5000 }).toEqual(await apiSeqs(''));
  });

  it('searches and pages the long lists (Personal Networks, Service Groups)', async () => {
    // Eleven more GWs, registered once and offline now (recorded straight in the store), and a second SG.
    for (let i = 0; i < 11; i++) await s.server.store.registerGateway(`urn:cpns:gw:${randomUUID()}`);
    await api('POST', '/api/v1/service-groups', { name: 'garage' });
    await page.reload();
    await page.locator('#live').filter({ hasText: 'live' }).waitFor();
    await card('garage').waitFor({ timeout: 5000 });
    const gwRows = page.locator('#pns tr.gw');
    await page
      .getByTestId('pn-page')
      .filter({ hasText: '1–10 of 13 Personal Networks (page 1 of 2)' })
      .waitFor();
    expect(await gwRows.count()).toBe(10);
    expect(await page.locator('#pn-prev').isDisabled()).toBe(true);
    await page.click('#pn-next');
    expect(await page.getByTestId('pn-page').textContent()).toBe(
      '11–13 of 13 Personal Networks (page 2 of 2)',
    );
    expect(await gwRows.count()).toBe(3);
    expect(await page.locator('#pn-next').isDisabled()).toBe(true);
    await page.click('#pn-prev');
    expect(await gwRows.count()).toBe(10);
    // Search by a PNE's short id: its PN, with that PNE only; by a GW's: the GW with all its PNEs.
    const pne2Id = (await api('GET', `/api/v1/service-groups/${sgId}/key`)).members.find(
      (m: { gwId: string | null }) => m.gwId === gw2!.identity,
    ).pneId as string;
    await page.fill('#pn-search', shortId(pne2Id));
    expect(await page.getByTestId('pn-page').textContent()).toBe('1–1 of 1 Personal Network');
    expect(await gwRows.getAttribute('data-gw-id')).toBe(gw2!.identity);
    expect(await gwRows.textContent()).toContain('1 matching PNE');
    expect(await page.locator('#pns tr.pne').getAttribute('data-pne-id')).toBe(pne2Id);
    await page.fill('#pn-search', s.gw!.identity.slice(-12).toUpperCase());
    expect(await gwRows.getAttribute('data-gw-id')).toBe(s.gw!.identity);
    expect(await page.locator('#pns tr.pne').getAttribute('data-pne-id')).toBe(s.pneIdentity);
    await page.fill('#pn-search', 'no-such-node');
    expect(await gwRows.count()).toBe(0);
    expect(await page.getByTestId('pn-page').textContent()).toBe('No Personal Networks');
    await page.fill('#pn-search', '');
    expect(await gwRows.count()).toBe(10);
    // Service Groups: by name, or by a member.
    const names = () =>
      page.locator('article.sg').evaluateAll((a) => a.map((e) => e.getAttribute('data-sg-name')));
    expect((await names()).sort()).toEqual(['garage', 'kitchen']);
    expect(await page.getByTestId('sg-page').textContent()).toBe('1–2 of 2 Service Groups');
    await page.fill('#sg-search', 'GAR');
    expect(await names()).toEqual(['garage']);
    await page.fill('#sg-search', shortId(s.pneIdentity!));
    expect(await names()).toEqual(['kitchen']);
    await page.fill('#sg-search', '');
    expect(await names()).toHaveLength(2);
  });

  it('creates a Service Group from the console; text is rendered as text, not markup', async () => {
    const name = '<img src=x onerror=alert(1)> lab';
    await page.fill('#create-sg input[name=name]', name);
    await page.selectOption('#create-sg select[name=suite]', 'chacha20-poly1305');
    await page.fill('#create-sg input[name=members]', await enrolled(s, randomPne()));
    await page.click('#create-sg button[type=submit]');
    const c = page.locator('article.sg').filter({ hasText: 'lab' });
    await c.waitFor({ timeout: 5000 });
    expect(await c.locator('h3').textContent()).toBe(name);
    expect(await page.locator('article.sg img').count()).toBe(0);
    expect(await c.getByTestId('epoch').textContent()).toBe('1');
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'console.png'), fullPage: true });
  });

  it('works at phone width (390×844): no horizontal overflow, tables as blocks', async () => {
    const phone = await browser.newContext({
      ignoreHTTPSErrors: true,
      viewport: { width: 390, height: 844 },
    });
    try {
      const p = await phone.newPage();
      p.on('pageerror', (e) => pageErrors.push(e.message));
      await p.goto(`${s.url}/console/`);
      await p.fill('#token', s.token);
      await p.click('#login-form button[type=submit]');
      await p.locator('#live').filter({ hasText: 'live' }).waitFor();
      await p
        .locator('article.sg[data-sg-name="kitchen"] [data-testid=ack-chart]')
        .waitFor({ timeout: 5000 });
      await p.locator('#audit-log tbody tr').first().waitFor({ timeout: 5000 });
      const layout = (await p.evaluate(`(() => {
        const w = document.documentElement.clientWidth;
        const wide = [...document.querySelectorAll('body *')]
          .filter((e) => { const r = e.getBoundingClientRect(); return r.width > 0 && r.right > w + 0.5; })
          .map((e) => e.tagName + '.' + (e.getAttribute('class') || '') + '#' + e.id);
        return { w, scroll: document.documentElement.scrollWidth, wide: wide.slice(0, 10),
          thead: getComputedStyle(document.querySelector('#pns thead')).display };
      })()`)) as { w: number; scroll: number; wide: string[]; thead: string };
      expect(layout.w).toBe(390);
      expect(layout.wide).toEqual([]);
      expect(layout.scroll).toBeLessThanOrEqual(layout.w);
      expect(layout.thead).toBe('none');
      // Each cell says which column it is.
      const before = await p.evaluate(`getComputedStyle(document.querySelector(
        'article.sg[data-sg-name="kitchen"] tr[data-pne-id="${s.pneIdentity}"] td[data-label="Group Key"]'), '::before').content`);
      expect(before).toBe('"Group Key"');
      await p.screenshot({ path: join(ARTIFACTS, 'console-phone.png') });
      await p
        .locator('article.sg[data-sg-name="kitchen"]')
        .screenshot({ path: join(ARTIFACTS, 'console-phone-sg.png') });
      await p.locator('#audit').screenshot({ path: join(ARTIFACTS, 'console-phone-audit.png') });
      await p.screenshot({ path: join(ARTIFACTS, 'console-phone-full.png'), fullPage: true });
    } finally {
      await phone.close();
    }
  });

  it('revokes an identity from the console', async () => {
    // Thirteen PNs: the GW is found by searching for it.
    await page.fill('#pn-search', s.gw!.identity);
    const gwRow = page.locator(`tr.gw[data-gw-id="${s.gw!.identity}"]`);
    await gwRow.locator('button[data-action=revoke]').click();
    expect(dialogs.at(-1)).toBe(
      `Revoke ${s.gw!.identity}? Its sessions close and its Service Groups get a new key.`,
    );
    await gwRow.waitFor({ state: 'detached', timeout: 5000 });
    const ids = await api('GET', '/api/v1/identities?role=gw');
    const revoked = ids.find((i: { id: string }) => i.id === s.gw!.identity);
    expect(revoked.revokedAt).toBeGreaterThan(0);
    expect(pageErrors).toEqual([]);
  });
});
