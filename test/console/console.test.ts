/**
 * End to end: the web console in headless Chromium (Debian's /usr/bin/chromium driven by playwright-core)
 * against a real CPNS Server with an enrolled PN Gateway, over HTTPS.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PneClient } from '../../src/pne/index.js';
import { enrolled, randomPne, type Stack, startStack } from '../admin/fixture.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARTIFACTS = join(process.cwd(), 'test-artifacts');

let s: Stack;
let browser: Browser;
let page: Page;
let pne: PneClient | undefined;
const pageErrors: string[] = [];

const connectPne = () =>
  PneClient.connect({
    gwUrl: s.gw!.url,
    credentials: s.pneCredentials!,
    heartbeat: false,
    reconnect: { initialMs: 30, maxMs: 300 },
  });

async function api(method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object) {
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
    page = await context.newPage();
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') pageErrors.push(m.text());
    });
    page.on('dialog', (d) => void d.accept());
  });

  afterAll(async () => {
    await pne?.close();
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

  it('revokes an identity from the console', async () => {
    const gwRow = page.locator(`tr.gw[data-gw-id="${s.gw!.identity}"]`);
    await gwRow.locator('button[data-action=revoke]').click();
    await gwRow.waitFor({ state: 'detached', timeout: 5000 });
    const ids = await api('GET', '/api/v1/identities?role=gw');
    expect(ids[0].revokedAt).toBeGreaterThan(0);
    expect(pageErrors).toEqual([]);
  });
});
