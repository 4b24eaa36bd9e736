/**
 * Every scrape passes `promtool check metrics` (Prometheus's own linter of the exposition format: names, units,
 * `_total` only on counters, HELP and TYPE): the CPNS Server's `/metrics` (admin app over HTTPS, with the token)
 * and a PN GW's metrics endpoint (`GatewayMetrics` over `serveMetrics`, what `cpns gateway --metrics-port` runs),
 * scraped from real running instances, before and after traffic. promtool is Debian's `prometheus` package
 * (`/usr/bin/promtool`); without it the test is skipped with the reason, except with CI=true, where it fails.
 */
import { spawnSync } from 'node:child_process';
import { get as httpGet } from 'node:http';
import { get as httpsGet } from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  GATEWAY_METRIC_NAMES,
  GatewayMetrics,
  METRIC_NAMES,
  type MetricsEndpoint,
  serveMetrics,
} from '../../src/metrics/index.js';
import { PneClient } from '../../src/pne/index.js';
import { type Stack, startStack } from '../admin/fixture.js';
import { until } from '../integration/helpers.js';

const HAS_PROMTOOL = spawnSync('promtool', ['--version'], { stdio: 'ignore' }).status === 0;
const IN_CI = process.env.CI === 'true';
const SKIP = HAS_PROMTOOL
  ? undefined
  : 'promtool is not installed (Debian: apt-get install prometheus; only /usr/bin/promtool is used)';

/** `promtool check metrics` of one scrape: its exit code and everything it said. */
function promtool(text: string): { status: number | null; out: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}`.trim() };
}

function scrape(url: string, o: { ca?: string; token?: string } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const get = url.startsWith('https:') ? httpsGet : httpGet;
    const headers = o.token ? { authorization: `Bearer ${o.token}` } : {};
    get(url, { ...(o.ca ? { ca: o.ca } : {}), headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode !== 200) return reject(new Error(`${url}: HTTP ${res.statusCode}`));
        if (!String(res.headers['content-type']).startsWith('text/plain'))
          return reject(new Error(`${url}: content-type ${res.headers['content-type']}`));
        resolve(body);
      });
    }).on('error', reject);
  });
}

if (IN_CI && SKIP) {
  it('promtool is available in CI (.ci/run installs Debian prometheus)', () => {
    expect.fail(SKIP);
  });
}

describe.skipIf(SKIP !== undefined)(`promtool check metrics${SKIP ? ` (skipped: ${SKIP})` : ''}`, () => {
  let s: Stack;
  let endpoint: MetricsEndpoint;
  let pne: PneClient | undefined;
  const serverMetrics = () => scrape(`${s.url}/metrics`, { ca: s.caPem, token: s.token });

  beforeAll(async () => {
    s = await startStack({ withGateway: true, serverWired: true });
    const gw = s.gw!;
    endpoint = await serveMetrics(new GatewayMetrics(() => gw.stats()), { port: 0 });
  });

  afterAll(async () => {
    await pne?.close();
    await endpoint?.close();
    await s?.close();
  });

  it('the server and GW scrapes are clean before any traffic, with every label value we know at 0', async () => {
    const server = await serverMetrics();
    expect(promtool(server)).toEqual({ status: 0, out: '' });
    for (const n of METRIC_NAMES) expect(server).toContain(`# TYPE ${n} `);
    expect(server).toMatch(/^cpns_relay_refusals_total\{code="REPLAY"\} 0$/m);
    expect(server).toMatch(/^cpns_build_info\{version="[^"]+",node="v\d+\.\d+\.\d+"\} 1$/m);

    const gw = await scrape(endpoint.url);
    expect(promtool(gw)).toEqual({ status: 0, out: '' });
    for (const n of GATEWAY_METRIC_NAMES) expect(gw).toContain(`# TYPE ${n} `);
    expect(gw).toMatch(/^cpns_gw_sessions\{kind="server"\} 1$/m);
    expect(gw).toMatch(/^cpns_gw_sessions\{kind="pne"\} 0$/m);
    expect(gw).toMatch(/^cpns_gw_drops_total\{code="NOT_MEMBER"\} 0$/m);
    expect(gw).toMatch(/^cpns_gw_broadcasts_total 0$/m);
    expect(gw).toMatch(/^cpns_gw_fallbacks_total 0$/m);
    expect(gw).toContain('process_resident_memory_bytes');
    expect(gw).toMatch(/^cpns_build_info\{/m);
  });

  it('clean after traffic: a PNE attached, a Service Group, a message relayed', async () => {
    pne = await PneClient.connect({
      gwUrl: s.gw!.url,
      credentials: s.pneCredentials!,
      heartbeat: false,
      reconnect: false,
    });
    const sg = await s.server.admin.createGroup({ name: 'scraped', members: [pne.identity] });
    await pne.waitForKey(sg.sgId);
    pne.send(sg.sgId, 'hello');
    await until(async () => /^cpns_relayed_messages_total [1-9]/m.test(await serverMetrics()), 10_000);

    const server = await serverMetrics();
    expect(promtool(server)).toEqual({ status: 0, out: '' });
    expect(server).toMatch(/^cpns_sessions\{role="gw"\} 1$/m);
    expect(server).toMatch(/^cpns_key_updates_total\{reason="create"\} 1$/m);

    const gw = await scrape(endpoint.url);
    expect(promtool(gw)).toEqual({ status: 0, out: '' });
    expect(gw).toMatch(/^cpns_gw_sessions\{kind="pne"\} 1$/m);
  });

  it('the check itself bites: the runtime library default gauges named _total are refused', () => {
    const bad =
      '# HELP nodejs_active_handles_total x\n# TYPE nodejs_active_handles_total gauge\nnodejs_active_handles_total 3\n';
    const r = promtool(bad);
    expect(r.status).not.toBe(0);
    expect(r.out).toContain('non-counter metrics should not have "_total" suffix');
  });

  it('the GW endpoint serves /metrics only', async () => {
    const status = (path: string, method = 'GET') =>
      new Promise<number>((resolve, reject) => {
        const u = new URL(endpoint.url);
        const req = httpGet({ host: u.hostname, port: u.port, path, method }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
      });
    expect(await status('/metrics')).toBe(200);
    expect(await status('/metrics?x=1')).toBe(200);
    expect(await status('/')).toBe(404);
    expect(await status('/metrics/../x')).toBe(404);
    expect(await status('/metrics', 'POST')).toBe(405);
  });
});
