/**
 * What every CPNS Prometheus registry has (the server's `CpnsMetrics`, a GW's `GatewayMetrics`): prom-client's
 * default process metrics, less the three gauges whose names break the exposition rules, and `cpns_build_info`.
 * Every scrape passes `promtool check metrics` (test/metrics/promtool.test.ts).
 */
import { createRequire } from 'node:module';
import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';

/**
 * prom-client's default gauges named `_total`, a suffix reserved for counters (promtool: 'non-counter metrics
 * should not have "_total" suffix'). Dropped: the same values are in `nodejs_active_handles`,
 * `nodejs_active_requests` and `nodejs_active_resources`, by type (sum them for the total).
 */
export const DROPPED_DEFAULT_METRICS = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
] as const;

const LABEL_RE = /^[A-Za-z0-9_.:-]{1,64}$/;
/** Bounded label value: anything unexpected is folded into 'other' so a bug cannot explode cardinality. */
export function label(v: string): string {
  return LABEL_RE.test(v) ? v : 'other';
}

/** The package version (package.json sits two levels above both src/metrics and dist/metrics). */
function packageVersion(): string {
  try {
    const pkg = createRequire(import.meta.url)('../../package.json') as { version?: unknown };
    return typeof pkg.version === 'string' ? label(pkg.version) : 'unknown';
  } catch {
    return 'unknown';
  }
}

export interface RegistryOptions {
  /** Collect prom-client's default process metrics (CPU, memory, event loop, GC). Default true. */
  defaultMetrics?: boolean;
}

/** A private registry with the default metrics (unless turned off) and `cpns_build_info`. */
export function createRegistry(opts: RegistryOptions = {}): Registry {
  const registry = new Registry();
  const info = new Gauge({
    name: 'cpns_build_info',
    help: 'Always 1; labels: the cpns package version and the Node.js version running it',
    labelNames: ['version', 'node'],
    registers: [registry],
  });
  info.set({ version: packageVersion(), node: label(process.version) }, 1);
  if (opts.defaultMetrics !== false) {
    collectDefaultMetrics({ register: registry });
    for (const name of DROPPED_DEFAULT_METRICS) registry.removeSingleMetric(name);
  }
  return registry;
}
