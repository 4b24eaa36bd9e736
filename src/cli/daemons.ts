import { existsSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { FastifyBaseLogger } from 'fastify';
import pino, { type Logger } from 'pino';
import { buildAdminApp } from '../admin/app.js';
import { loadOrCreateAdminToken } from '../admin/token.js';
import { type JetStreamBus, openJetStreamBus } from '../cluster/index.js';
import { isPostgresUrl, openServerStore } from '../embed/index.js';
import { type Credentials, PnGateway } from '../gateway/index.js';
import { CpnsMetrics, GatewayMetrics, type MetricsEndpoint, serveMetrics } from '../metrics/index.js';
import { PneClient } from '../pne/index.js';
import { CpnsServer } from '../server/index.js';
import { MAX_RECONNECT_URLS } from '../transport/limits.js';
import { defaultDataDir } from './data-dir.js';
import { lockDataDir } from './datadir-lock.js';
import { explainConnectFailure, explainEnrollFailure } from './explain.js';
import {
  credentialsState,
  KEY_ENV,
  loadCredentials,
  readKeyEncryptionKey,
  readText,
  saveCredentials,
  writeJson,
} from './files.js';
import { parseMediaOption } from './media.js';
import { readSecret, TOKEN_ON_ARGV } from './secrets.js';
import { DaemonError, UsageError } from './usage.js';

export { DaemonError, UsageError } from './usage.js';

/** The server's enrollment listener port when --enroll-port is not given (docs/operator.md). */
const DEFAULT_ENROLL_PORT = 7445;
/**
 * `cpns gateway` listens on fixed ports unless told otherwise (its URLs stay the same across restarts): PNE
 * sessions on 7450, PNE enrollment on 7451. The server's defaults are 7443 (GW sessions), 7444 (admin), 7445
 * (enrollment), so a server and a GW on one machine do not clash. `--port 0` asks for an ephemeral port.
 */
export const DEFAULT_GW_PORT = 7450;
export const DEFAULT_GW_ENROLL_PORT = 7451;

function logger(name: string): Logger {
  // Structured logs go to stderr, so stdout carries only command output (JSON lines for scripts).
  return pino({ name, level: process.env.CPNS_LOG_LEVEL ?? 'info' }, pino.destination(2));
}

/**
 * Locks the data directory before anything in it is opened or written (src/cli/datadir-lock.ts: one process per
 * data directory; the lock goes on exit). Until the daemon is up (`untilDone`), SIGINT/SIGTERM exit at once.
 */
function claimDataDir(dataDir: string, role: string): void {
  lockDataDir(dataDir, role);
  const early = (sig: NodeJS.Signals) => process.exit(sig === 'SIGINT' ? 130 : 143); // 'exit' drops the lock
  process.once('SIGINT', early);
  process.once('SIGTERM', early);
  earlySignals = () => {
    process.off('SIGINT', early);
    process.off('SIGTERM', early);
  };
}
let earlySignals = (): void => {};

/**
 * Runs a daemon until SIGINT/SIGTERM (resolves: exit code 0) or a fatal condition reported through `fatal`
 * (rejects with it: exit code 1, e.g. the identity was revoked); `stop` runs once either way. The process stays
 * alive meanwhile even when nothing else holds the event loop (a PNE waiting to reconnect to its GW).
 */
function untilDone(
  stop: () => Promise<void>,
  watch?: (fatal: (err: DaemonError) => void) => void,
): Promise<void> {
  earlySignals();
  return new Promise((resolve, reject) => {
    const keepAlive = setInterval(() => {}, 1 << 30);
    let done = false;
    const finish = (err?: DaemonError) => {
      if (done) return;
      done = true;
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      stop()
        .catch(() => {})
        .finally(() => {
          clearInterval(keepAlive);
          if (err) reject(err);
          else resolve();
        });
    };
    const onSignal = () => finish();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    watch?.(finish);
  });
}

const revokedError = (identity: string) =>
  new DaemonError('REVOKED', `identity ${identity} was revoked by the operator`);

/** Refuses `--token <value>` and `--key <value>` (usage errors, before anything else happens). */
function noTokenOnArgv(values: { token?: string; key?: string }): void {
  if (values.token !== undefined) throw usage(`${TOKEN_ON_ARGV} (CPNS_TOKEN)`);
  if (values.key !== undefined)
    throw usage(
      '--key is not accepted: a key on the command line is visible to every user (ps, /proc) and stays in shell ' +
        `history; use --key-file <path> or the environment variable ${KEY_ENV}`,
    );
}

/**
 * The GW's / PNE's credentials: loaded from the data directory (the private key unsealed with the key of
 * --key-file or CPNS_KEY when it is sealed), or else enrolled with `enroll()` and saved (sealed when a key is
 * given). A plain private key found with a key given is sealed under it (logged). The key is wiped afterwards.
 */
async function credentialsOf(
  dataDir: string,
  kek: Buffer | undefined,
  enroll: () => Promise<Credentials>,
  log: (msg: string) => void,
): Promise<Credentials> {
  try {
    const loaded = loadCredentials(dataDir, {
      kek,
      onSealed: () => log('private key was stored in plain PEM: now sealed under the given key'),
    });
    if (loaded) return loaded;
    const c = await enroll();
    saveCredentials(dataDir, c, kek);
    return c;
  } finally {
    kek?.fill(0);
  }
}

/**
 * The enrollment token (first start only): --token-file <path> | --token-file - (standard input) | CPNS_TOKEN.
 */
async function enrollmentToken(values: { 'token-file'?: string }): Promise<string> {
  const token = await readSecret(values['token-file'], 'CPNS_TOKEN');
  if (!token)
    throw usage(
      'first start: an enrollment token is required (--token-file <path>, --token-file - for standard input, or CPNS_TOKEN)',
    );
  return token;
}

const env = (k: string): string | undefined => process.env[k] || undefined;

/**
 * `--server a,b,c` / `--gw a,b` (also CPNS_SERVER_URL / CPNS_GW_URL, or a JSON array in --config): the URLs to
 * fail over between (docs/operator.md "Several server nodes, several GWs"). Each must be a wss:// URL; at most
 * MAX_RECONNECT_URLS; duplicates are dropped.
 */
export function urlListOption(value: string, flag: string): string[] {
  const urls = [
    ...new Set(
      value
        .split(',')
        .map((u) => u.trim())
        .filter(Boolean),
    ),
  ];
  if (urls.length === 0) throw usage(`${flag} needs at least one wss:// URL`);
  if (urls.length > MAX_RECONNECT_URLS) throw usage(`${flag}: at most ${MAX_RECONNECT_URLS} URLs`);
  for (const u of urls) {
    let ok = false;
    try {
      ok = new URL(u).protocol === 'wss:';
    } catch {}
    if (!ok) throw usage(`${flag}: not a wss:// URL: ${JSON.stringify(u)}`);
  }
  return urls;
}

/**
 * `--config <file.json>`: a JSON object whose keys are the long option names (e.g. {"data-dir": "...",
 * "port": 7443}). Its values go before the command line, so a flag given on the command line wins; both win
 * over the CPNS_* environment defaults. A list option (`server`, `gw`, `media`) may also be a JSON array of
 * strings, the same as its comma-separated form.
 */
export function withConfig(argv: string[]): string[] {
  const i = argv.indexOf('--config');
  const path = i >= 0 ? argv[i + 1] : argv.find((a) => a.startsWith('--config='))?.slice('--config='.length);
  if (!path) return argv;
  let cfg: unknown;
  try {
    cfg = JSON.parse(readText(path, 'configuration file (--config)'));
  } catch (e) {
    if (e instanceof DaemonError) throw e;
    throw new DaemonError('CONFIG_MALFORMED', `--config ${path} is not valid JSON`);
  }
  if (typeof cfg !== 'object' || cfg === null || Array.isArray(cfg))
    throw usage('--config must hold a JSON object');
  const pre: string[] = [];
  for (const [k, v] of Object.entries(cfg)) {
    if (!/^[a-z][a-z-]*$/.test(k) || k === 'config') throw usage('--config: invalid option name');
    if (typeof v === 'boolean') {
      if (v) pre.push(`--${k}`);
    } else if (typeof v === 'string' || typeof v === 'number') pre.push(`--${k}`, String(v));
    else if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string' && !x.includes(',')))
      pre.push(`--${k}`, v.join(','));
    else throw usage('--config: values must be strings, numbers, booleans or arrays of strings');
  }
  return [...pre, ...argv];
}

/**
 * `cpns server`: the CPNS Server with its SQLite store and CA in --data-dir, plus its operator surface (admin REST
 * API, SSE, /metrics, /openapi.json, web console; docs/operator.md) over HTTPS on --admin-host:--admin-port.
 */
export async function serverCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: withConfig(argv),
    options: {
      config: { type: 'string' },
      'data-dir': { type: 'string', default: defaultDataDir('server') },
      store: { type: 'string', default: env('CPNS_STORE') },
      'store-schema': { type: 'string', default: env('CPNS_STORE_SCHEMA') },
      nats: { type: 'string', default: env('CPNS_NATS_URLS') },
      'node-id': { type: 'string', default: env('CPNS_NODE_ID') },
      host: { type: 'string', default: env('CPNS_HOST') ?? '127.0.0.1' },
      port: { type: 'string', default: env('CPNS_PORT') ?? '7443' },
      'enroll-port': { type: 'string', default: env('CPNS_ENROLL_PORT') ?? String(DEFAULT_ENROLL_PORT) },
      'admin-port': { type: 'string', default: env('CPNS_ADMIN_PORT') ?? '7444' },
      'admin-host': { type: 'string', default: env('CPNS_ADMIN_HOST') ?? '127.0.0.1' },
      'public-metrics': { type: 'boolean', default: false },
    },
  });
  const dataDir = values['data-dir'];
  claimDataDir(dataDir, 'server');
  const log = logger('cpns-server');
  const metrics = new CpnsMetrics();
  // The composition root chooses the backend: SQLite in the data directory, or PostgreSQL with --store; both
  // sealed under the master key of the data directory (or CPNS_MASTER_KEY).
  const storeUrl = values.store;
  if (storeUrl !== undefined && !isPostgresUrl(storeUrl)) {
    throw usage('--store takes a postgres://user@host:port/database URL (omit it for SQLite in --data-dir)');
  }
  const storeSchema = values['store-schema'];
  if (storeSchema !== undefined && storeUrl === undefined)
    throw usage('--store-schema needs --store postgres://…');
  // A cluster node: the shared store must be PostgreSQL, and the node needs a name of its own (docs/cluster.md).
  let bus: JetStreamBus | undefined;
  if (values.nats !== undefined) {
    if (storeUrl === undefined)
      throw usage('--nats needs --store postgres://… (the nodes share one database)');
    if (values['node-id'] === undefined) throw usage('--nats needs --node-id <name> (unique per node)');
    const servers = values.nats
      .split(',')
      .map((u) => u.trim())
      .filter(Boolean);
    bus = await openJetStreamBus({ servers, connectionName: `cpns-server-${values['node-id']}` });
  }
  const server = await CpnsServer.start({
    ...(bus ? { cluster: { bus, nodeId: values['node-id'] as string } } : {}),
    store: await openServerStore(dataDir, {
      ...(storeUrl !== undefined ? { storeUrl } : {}),
      ...(storeSchema !== undefined ? { storeSchema } : {}),
    }),
    host: values.host,
    port: Number(values.port),
    enrollPort: Number(values['enroll-port']),
    logger: log,
    metrics,
  });
  const tls = server.adminTls();
  let app: Awaited<ReturnType<typeof buildAdminApp>>;
  try {
    app = await buildAdminApp({
      admin: server.admin,
      store: server.store,
      events: server.events,
      metrics,
      auth: { token: loadOrCreateAdminToken(dataDir) },
      logger: log.child({ component: 'admin' }) as unknown as FastifyBaseLogger,
      https: { cert: tls.certPem, key: tls.keyPem, minVersion: 'TLSv1.3' },
      publicMetrics: values['public-metrics'],
      // A cluster node is ready only while its bus answers too (/readyz).
      ...(bus ? { bus } : {}),
    });
    await app.listen({ host: values['admin-host'], port: Number(values['admin-port']) });
  } catch (e) {
    await server.close();
    throw e;
  }
  const addr = app.server.address();
  const adminPort = typeof addr === 'object' && addr ? addr.port : Number(values['admin-port']);
  const adminHost = /^(0\.0\.0\.0|::)$/.test(values['admin-host']) ? '127.0.0.1' : values['admin-host'];
  const adminUrl = `https://${adminHost.includes(':') ? `[${adminHost}]` : adminHost}:${adminPort}`;
  writeFileSync(join(dataDir, 'ca.pem'), server.caPem);
  writeJson(dataDir, 'server.json', { url: server.url, enrollUrl: server.enrollUrl, adminUrl });
  log.info({ url: server.url, enrollUrl: server.enrollUrl, adminUrl, dataDir }, 'CPNS Server ready');
  await untilDone(async () => {
    log.info('shutting down');
    await app.close();
    await server.close();
    await bus?.close();
  });
  return 0;
}

/**
 * `cpns gateway`: a PN GW; enrolls with the token of --token-file (or CPNS_TOKEN) on first start, then keeps its
 * credentials in --data-dir. Exits 1 when the operator revokes it.
 */
export async function gatewayCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: withConfig(argv),
    options: {
      config: { type: 'string' },
      'data-dir': { type: 'string', default: defaultDataDir('gateway') },
      server: { type: 'string' },
      'enroll-url': { type: 'string', default: env('CPNS_ENROLL_URL') },
      ca: { type: 'string', default: env('CPNS_CA') },
      token: { type: 'string' },
      'token-file': { type: 'string' },
      key: { type: 'string' },
      'key-file': { type: 'string' },
      host: { type: 'string' },
      port: { type: 'string' },
      'enroll-port': { type: 'string' },
      media: { type: 'string' },
      'broadcast-interface': { type: 'string' },
      'metrics-host': { type: 'string' },
      'metrics-port': { type: 'string' },
    },
  });
  noTokenOnArgv(values);
  const dataDir = values['data-dir'];
  // Off unless asked for on this start (not a saved setting): plain HTTP, loopback unless --metrics-host.
  const metricsPort =
    values['metrics-port'] !== undefined ? portOption(values['metrics-port'], '--metrics-port') : undefined;
  if (values['metrics-host'] !== undefined && metricsPort === undefined)
    throw usage('--metrics-host needs --metrics-port <n>');
  // What the command line, --config and the environment leave out comes from the last start's settings.
  const saved = loadSettings(dataDir);
  const setting = settingOf(values, saved);
  const serverList = setting('server', 'CPNS_SERVER_URL');
  if (!serverList)
    throw usage(
      `gateway needs --server <wss url>[,<wss url>...] (CPNS_SERVER_URL) on its first start; later it is in ${join(dataDir, SETTINGS_FILE)}`,
    );
  const serverUrls = urlListOption(serverList, '--server');
  const host = setting('host') ?? '127.0.0.1';
  const port = portOption(setting('port') ?? String(DEFAULT_GW_PORT), '--port');
  const enrollPort = portOption(setting('enroll-port') ?? String(DEFAULT_GW_ENROLL_PORT), '--enroll-port');
  const media = setting('media') ?? 'wifi';
  const offered = parseMediaOption(media, '--media', true);
  const broadcastInterface = setting('broadcast-interface');
  if (broadcastInterface !== undefined && !isIP(broadcastInterface))
    throw usage('--broadcast-interface takes the IP address of a local interface');
  const enrolled = credentialsState(dataDir) !== 'absent';
  const caPem = enrolled ? undefined : readCa(values.ca);
  const kek = readKeyEncryptionKey(values['key-file']);
  claimDataDir(dataDir, 'gateway');
  const log = logger('cpns-gateway');
  // Enrollment goes to the first node's enrollment listener unless --enroll-url names one.
  const server = serverUrls[0] as string;
  const credentials = await credentialsOf(
    dataDir,
    kek,
    async () => {
      const token = await enrollmentToken(values);
      const enrollUrl = values['enroll-url'] ?? serverEnrollUrl(server);
      const urlFrom = values['enroll-url'] ? '--enroll-url' : 'from --server; --enroll-url sets it';
      log.info({ enrollUrl }, 'first start: enrolling at the CPNS Server');
      return PnGateway.enroll({ enrollUrl, caPem: caPem ?? readCa(values.ca), token }).catch((e: unknown) => {
        throw explainEnrollFailure(e, { role: 'gw', enrollUrl, urlFrom, caFile: values.ca ?? '' });
      });
    },
    (m) => log.warn({ dataDir }, m),
  );
  const identity = credentials.identity;
  log.info({ server: serverUrls }, 'connecting to the CPNS Server (waiting for it if it is down)');
  const gw = await PnGateway.start({
    serverUrls,
    credentials,
    host,
    port,
    enrollPort,
    logger: log,
    media: offered.media,
    // Broadcast Group Key delivery on the media given with a multicast group; its state lives in the data
    // directory, encrypted at rest (docs/broadcast.md).
    dataDir,
    broadcastMedia: offered.broadcast,
    ...(broadcastInterface !== undefined ? { broadcastInterface } : {}),
    // A daemon waits patiently for the server (it keeps reconnecting with backoff meanwhile).
    startTimeoutMs: 10 * 60_000,
  }).catch((e: unknown) => {
    throw (e as { code?: string }).code === 'REVOKED' ? revokedError(identity) : e;
  });
  let metrics: MetricsEndpoint | undefined;
  if (metricsPort !== undefined) {
    try {
      metrics = await serveMetrics(new GatewayMetrics(() => gw.stats()), {
        host: values['metrics-host'] ?? '127.0.0.1',
        port: metricsPort,
      });
    } catch (e) {
      await gw.close();
      throw new DaemonError(
        'METRICS_LISTEN',
        `cannot listen on --metrics-host/--metrics-port (${(e as { code?: string }).code ?? 'error'})`,
      );
    }
  }
  const metricsUrl = metrics ? { metricsUrl: metrics.url } : {};
  saveSettings(dataDir, {
    server: serverUrls,
    host,
    port,
    'enroll-port': enrollPort,
    media,
    ...(broadcastInterface !== undefined ? { 'broadcast-interface': broadcastInterface } : {}),
  });
  // Last: gateway.json says the GW is up, so whoever waits for it finds the settings of this start saved too.
  writeJson(dataDir, 'gateway.json', {
    identity: gw.identity,
    url: gw.url,
    enrollUrl: gw.enrollUrl,
    ...metricsUrl,
  });
  log.info({ identity: gw.identity, url: gw.url, enrollUrl: gw.enrollUrl, ...metricsUrl }, 'PN GW ready');
  await untilDone(
    async () => {
      await metrics?.close();
      await gw.close();
    },
    (fatal) =>
      gw.once('revoked', () => {
        log.error({ identity }, 'this GW was revoked by the operator: stopping');
        fatal(revokedError(identity));
      }),
  );
  return 0;
}

/** A PNE's enrollment URL by default: the GW's host, its default enrollment port, /enroll. */
function gwEnrollUrl(gwUrl: string): string {
  const u = new URL(gwUrl);
  u.port = String(DEFAULT_GW_ENROLL_PORT);
  u.pathname = '/enroll';
  return u.toString();
}

/** `--ca <ca.pem>` (CPNS_CA): needed on the first start only (the enrolled credentials keep the CA). */
function readCa(path: string | undefined): string {
  if (path === undefined)
    throw usage('first start: --ca <ca.pem> (CPNS_CA) is required: the CPNS CA certificate, to enroll');
  return readText(path, 'CA certificate (--ca, CPNS_CA)');
}

/** `--port` / `--enroll-port`: 0 (ephemeral) to 65535. */
function portOption(v: string, flag: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw usage(`${flag} takes a port number (0-65535)`);
  return n;
}

/**
 * `<dataDir>/settings.json`: the connection settings of the last successful start of a GW (server URLs, host,
 * ports, media) or a PNE (GW URLs, media), keyed by long option name like --config. A later start takes from it
 * whatever the command line, --config and the environment leave out, so after enrollment `--data-dir` is enough.
 */
const SETTINGS_FILE = 'settings.json';

type Settings = Readonly<Record<string, string>>;

function loadSettings(dataDir: string): Settings {
  const path = join(dataDir, SETTINGS_FILE);
  if (!existsSync(path)) return {};
  let raw: unknown;
  try {
    raw = JSON.parse(readText(path));
  } catch {
    throw new DaemonError('SETTINGS_MALFORMED', `${path} is not valid JSON: fix or remove it`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new DaemonError('SETTINGS_MALFORMED', `${path} must hold a JSON object: fix or remove it`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw)) {
    if (typeof v === 'string' || typeof v === 'number') out[k] = String(v);
    else if (Array.isArray(v) && v.every((x) => typeof x === 'string')) out[k] = v.join(',');
  }
  return out;
}

function saveSettings(dataDir: string, s: Record<string, string | number | string[]>): void {
  writeJson(dataDir, SETTINGS_FILE, s);
}

/** A setting: the command line or --config, else its environment variable, else the saved settings. */
function settingOf(values: Record<string, unknown>, saved: Settings) {
  return (name: string, envVar?: string): string | undefined => {
    const v = values[name];
    if (typeof v === 'string') return v;
    return (envVar !== undefined ? env(envVar) : undefined) ?? saved[name];
  };
}

/** The server's enrollment URL by default: same host as its session URL, port DEFAULT_ENROLL_PORT, /enroll. */
function serverEnrollUrl(serverUrl: string): string {
  const u = new URL(serverUrl);
  u.port = String(DEFAULT_ENROLL_PORT);
  u.pathname = '/enroll';
  return u.toString();
}

/**
 * Locks the PNE's data directory, enrolls on first start, connects. `patient` (pne listen): a GW that cannot be
 * reached yet is retried with backoff and jitter (logged), as the SDK does once connected.
 */
async function pneConnect(
  values: {
    'data-dir': string;
    gw?: string;
    'enroll-url'?: string;
    ca?: string;
    token?: string;
    'token-file'?: string;
    key?: string;
    'key-file'?: string;
    media?: string;
  },
  sub: string,
  log: Logger,
  patient: boolean,
) {
  const { credentials, gwUrls, media, dataDir } = await pneEnrolled(
    values,
    sub,
    log,
    patient ? 10 * 60_000 : 0,
  );
  let pne: PneClient;
  try {
    // Patient: the SDK's own reconnect retries an unreachable GW (logged at info with each delay).
    if (patient) log.info({ gw: gwUrls }, 'connecting to the PN GW (waiting for it if it is not up)');
    pne = await PneClient.connect({
      gwUrls,
      credentials,
      ...(media !== undefined ? { media: parseMediaOption(media, '--media', false).media } : {}),
      logger: log,
      waitForGw: patient,
    });
  } catch (e) {
    if ((e as { code?: string }).code === 'REVOKED') throw revokedError(credentials.identity);
    throw explainConnectFailure(e, gwUrls);
  }
  saveSettings(dataDir, { gw: gwUrls, ...(media !== undefined ? { media } : {}) });
  return pne;
}

/**
 * Locks the PNE's data directory and enrolls on first start. For up to `waitMs` an enrollment that cannot happen
 * yet (the GW not up, or not connected to the server) is retried with backoff, saying so at info.
 */
async function pneEnrolled(
  values: Parameters<typeof pneConnect>[0],
  sub: string,
  log: Logger,
  waitMs: number,
) {
  noTokenOnArgv(values);
  const dataDir = values['data-dir'];
  const saved = loadSettings(dataDir);
  const setting = settingOf(values, saved);
  const gwList = setting('gw', 'CPNS_GW_URL');
  if (!gwList)
    throw usage(
      `pne needs --gw <wss url>[,<wss url>...] (CPNS_GW_URL) on its first start; later it is in ${join(dataDir, SETTINGS_FILE)}`,
    );
  const gwUrls = urlListOption(gwList, '--gw');
  // Not given: the SDK's default (wifi); a PNE listens for broadcasts only on media its GW broadcasts on.
  const media = setting('media');
  if (media !== undefined) parseMediaOption(media, '--media', false);
  const enrolled = credentialsState(dataDir) !== 'absent';
  const caPem = enrolled ? undefined : readCa(values.ca);
  const kek = readKeyEncryptionKey(values['key-file']);
  claimDataDir(dataDir, `pne ${sub}`);
  const credentials = await credentialsOf(
    dataDir,
    kek,
    async () => {
      const token = await enrollmentToken(values);
      // By default the first GW's enrollment listener on its default port (7451).
      const enrollUrl = values['enroll-url'] ?? gwEnrollUrl(gwUrls[0] as string);
      const urlFrom = values['enroll-url'] ? '--enroll-url' : 'from --gw; --enroll-url sets it';
      log.info({ enrollUrl }, 'first start: enrolling through the PN GW');
      const ca = caPem ?? readCa(values.ca);
      return patiently(
        () => PneClient.enroll({ enrollUrl, caPem: ca, token }),
        waitMs,
        (e, delayMs) =>
          log.info(
            { enrollUrl, code: (e as { code?: string }).code, delayMs },
            `waiting for the PN GW to enroll (${waitingFor(e)}), retrying in ${delayMs} ms`,
          ),
      ).catch((e: unknown) => {
        throw explainEnrollFailure(e, { role: 'pne', enrollUrl, urlFrom, caFile: values.ca ?? '' });
      });
    },
    (m) => log.warn({ dataDir }, m),
  );
  return { credentials, gwUrls, media, dataDir };
}

/** An enrollment that may work a little later: nothing answers yet, no answer in time, GW not yet connected. */
function enrollNotYet(e: unknown): boolean {
  const { code, field } = e as { code?: string; field?: string };
  return code === 'UNREACHABLE' || code === 'TIMEOUT' || (code === 'ENROLL_REFUSED' && field === 'server');
}

function waitingFor(e: unknown): string {
  const code = (e as { code?: string }).code;
  if (code === 'UNREACHABLE') return 'nothing answers at its enrollment URL yet';
  if (code === 'TIMEOUT') return 'no answer in time';
  return 'it is not connected to the CPNS Server yet';
}

/** `f` again with backoff (500 ms doubling to 5 s) while it fails with enrollNotYet and `waitMs` allows. */
async function patiently<T>(
  f: () => Promise<T>,
  waitMs: number,
  onRetry: (e: unknown, delayMs: number) => void,
): Promise<T> {
  const end = Date.now() + waitMs;
  for (let delayMs = 500; ; delayMs = Math.min(delayMs * 2, 5000)) {
    try {
      return await f();
    } catch (e) {
      if (!enrollNotYet(e) || Date.now() + delayMs > end) throw e;
      onRetry(e, delayMs);
      await new Promise((r) => setTimeout(r, delayMs));
    }
  }
}

/**
 * `cpns pne [listen]`, `cpns pne send --sg <id> --data <text>`, `cpns pne group create|join|leave|remove`.
 * Received Service Group messages are printed as JSON lines (for scripts).
 */
export async function pneCommand(argv: string[]): Promise<number> {
  const sub = argv[0] && !argv[0].startsWith('-') ? argv[0] : 'listen';
  const rest = sub === argv[0] ? argv.slice(1) : argv;
  const action = sub === 'group' ? rest[0] : undefined;
  const { values } = parseArgs({
    args: withConfig(action ? rest.slice(1) : rest),
    options: {
      config: { type: 'string' },
      'data-dir': { type: 'string', default: defaultDataDir('pne') },
      gw: { type: 'string' },
      'enroll-url': { type: 'string', default: env('CPNS_ENROLL_URL') },
      ca: { type: 'string', default: env('CPNS_CA') },
      token: { type: 'string' },
      'token-file': { type: 'string' },
      key: { type: 'string' },
      'key-file': { type: 'string' },
      media: { type: 'string' },
      sg: { type: 'string' },
      data: { type: 'string' },
      name: { type: 'string' },
      pne: { type: 'string' },
      open: { type: 'boolean', default: false },
    },
  });
  if (sub !== 'listen' && sub !== 'send' && sub !== 'group' && sub !== 'enroll')
    throw usage(`unknown pne subcommand ${sub}`);
  const log = logger('cpns-pne');
  if (sub === 'enroll') {
    // Enrolls (waiting up to 2 min for the GW), saves the settings, prints only the identity (for scripts:
    // PNE=$(cpns pne enroll ...)). Already enrolled: prints the identity.
    const { credentials, gwUrls, media, dataDir } = await pneEnrolled(values, sub, log, 2 * 60_000);
    saveSettings(dataDir, { gw: gwUrls, ...(media !== undefined ? { media } : {}) });
    process.stdout.write(`${credentials.identity}\n`);
    return 0;
  }
  const pne = await pneConnect(values, action ? `${sub} ${action}` : sub, log, sub === 'listen');
  const out = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);
  try {
    switch (sub) {
      case 'listen':
        out({ event: 'ready', identity: pne.identity });
        pne.on('message', (m: { sgId: string; sender: string; epoch: number; plaintext: Buffer }) =>
          out({
            event: 'message',
            sgId: m.sgId,
            sender: m.sender,
            epoch: m.epoch,
            text: m.plaintext.toString('utf8'),
          }),
        );
        pne.on('key', (k: { sgId: string; epoch: number; reason: string }) => out({ event: 'key', ...k }));
        // The SDK reconnects with backoff (and logs each attempt); say when it is back.
        pne.on('reconnected', () => log.info({ identity: pne.identity }, 're-attached to the GW'));
        await untilDone(
          () => pne.close(),
          (fatal) =>
            pne.once('revoked', () => {
              log.error({ identity: pne.identity }, 'this PNE was revoked by the operator: stopping');
              fatal(revokedError(pne.identity));
            }),
        );
        return 0;
      case 'send': {
        if (!values.sg || values.data === undefined) throw usage('pne send needs --sg <id> --data <text>');
        if (pne.currentEpoch(values.sg) === undefined)
          log.info({ sgId: values.sg }, 'waiting for the Group Key of the Service Group');
        await pne.waitForKey(values.sg);
        pne.send(values.sg, values.data);
        out({ event: 'sent', sgId: values.sg, epoch: pne.currentEpoch(values.sg) });
        return 0;
      }
      case 'group': {
        if (action === 'create') {
          if (!values.name) throw usage('pne group create needs --name');
          out(await pne.createGroup({ name: values.name, joinPolicy: values.open ? 'open' : 'invite' }));
        } else if (action === 'join' && values.sg) await pne.joinGroup(values.sg);
        else if (action === 'leave' && values.sg) await pne.leaveGroup(values.sg);
        else if (action === 'remove' && values.sg && values.pne)
          await pne.removeMember(values.sg, values.pne);
        else if (action === 'invite' && values.sg && values.pne) await pne.invite(values.sg, values.pne);
        else if (action === 'delete' && values.sg) await pne.deleteGroup(values.sg);
        else throw usage('pne group create|join|leave|invite|remove|delete --sg <id> [--pne <id>] [--name]');
        return 0;
      }
      default:
        throw usage(`unknown pne subcommand ${sub}`);
    }
  } finally {
    if (sub !== 'listen') await pne.close();
  }
}

function usage(msg: string): UsageError {
  return new UsageError(msg);
}
