/**
 * A metrics-only HTTP endpoint (`GET /metrics`, plain HTTP) for a process that has no admin app: a PN GW
 * (`cpns gateway --metrics-port`). Loopback by default; it serves counts only (no identity, no key, no id), and
 * nothing else: any other path is 404, any other method 405. Every limit is an option.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

export const METRICS_ENDPOINT_DEFAULTS = Object.freeze({
  host: '127.0.0.1',
  /** A scrape request (headers and all) must arrive within this long. */
  requestTimeoutMs: 10_000,
  /** Most concurrent connections (Prometheus needs one or two). */
  maxConnections: 16,
  /** Idle keep-alive connections are closed after this long. */
  keepAliveTimeoutMs: 5_000,
});

export interface MetricsEndpointOptions {
  /** Listen address. Default 127.0.0.1. */
  host?: string;
  /** Port; 0 for an ephemeral one. */
  port: number;
  requestTimeoutMs?: number;
  maxConnections?: number;
  keepAliveTimeoutMs?: number;
}

export interface MetricsEndpoint {
  /** `http://host:port/metrics` (the actual port when 0 was asked for). */
  readonly url: string;
  close(): Promise<void>;
}

interface MetricsSource {
  readonly contentType: string;
  text(): Promise<string>;
}

function reply(res: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, {
    'content-type': type,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  });
  res.end(body);
}

/** Serves `metrics` at `GET /metrics` (and `HEAD`); resolves once listening. */
export async function serveMetrics(
  metrics: MetricsSource,
  opts: MetricsEndpointOptions,
): Promise<MetricsEndpoint> {
  const o = { ...METRICS_ENDPOINT_DEFAULTS, ...opts };
  const server: Server = createServer({ requestTimeout: o.requestTimeoutMs }, (req, res) =>
    handle(metrics, req, res),
  );
  server.headersTimeout = o.requestTimeoutMs;
  server.keepAliveTimeout = o.keepAliveTimeoutMs;
  server.maxConnections = o.maxConnections;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : o.port;
  const host = o.host.includes(':') ? `[${o.host}]` : o.host;
  return {
    url: `http://${host}:${port}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function handle(metrics: MetricsSource, req: IncomingMessage, res: ServerResponse): void {
  const path = (req.url ?? '').split('?')[0];
  if (path !== '/metrics') {
    reply(res, 404, 'not found\n');
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('allow', 'GET, HEAD');
    reply(res, 405, 'method not allowed\n');
    return;
  }
  metrics.text().then(
    (text) => reply(res, 200, text, metrics.contentType),
    () => reply(res, 500, 'metrics unavailable\n'),
  );
}
