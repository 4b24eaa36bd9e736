/**
 * Prometheus metrics of a PN GW (docs/operator.md "PN GW metrics"). The GW itself stays free of prom-client (it
 * is an SDK: test/architecture/layers.test.ts): it keeps plain counts (`PnGateway.stats()`), and this registry
 * reads them at each scrape. `cpns gateway --metrics-port` wires the two and serves them (http.ts).
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import { ErrorCode } from '../core/errors.js';
import { createRegistry, label, type RegistryOptions } from './registry.js';

/** What a GW reports (the shape of `PnGateway.stats()`; structural, so this layer does not import the GW). */
export interface GatewayStats {
  /** Open sessions: authenticated PNE sessions, anonymous enrollment sessions, the session up to the server. */
  readonly sessions: { readonly pne: number; readonly enroll: number; readonly server: number };
  /** Group Key broadcasts sent (one per SG epoch delivered by broadcast in this PN) and their datagrams. */
  readonly broadcasts: number;
  readonly broadcastDatagrams: number;
  /** PNEs given a key by unicast because they did not ack its broadcast in time. */
  readonly fallbacks: number;
  /** Group messages dropped, by error code: refused from a PNE (rule P3), or unreadable from the server. */
  readonly drops: Readonly<Record<string, number>>;
}

/** Every metric name of a GW's registry (docs/operator.md lists them; tests check them). */
export const GATEWAY_METRIC_NAMES = [
  'cpns_gw_sessions',
  'cpns_gw_broadcasts_total',
  'cpns_gw_broadcast_datagrams_total',
  'cpns_gw_fallbacks_total',
  'cpns_gw_drops_total',
  'cpns_build_info',
] as const;

const SESSION_KINDS = ['pne', 'enroll', 'server'] as const;

/**
 * The codes a GW drops a group message with (docs/protocol.md rule P3, gateway/pne-messages.ts
 * `admitGroupMessage`; the header check of core/group/header.ts), exported at 0 from the start.
 */
export const GATEWAY_DROP_CODES: readonly ErrorCode[] = [
  ErrorCode.UNEXPECTED_MESSAGE,
  ErrorCode.TOO_LARGE,
  ErrorCode.MALFORMED,
  ErrorCode.UNSUPPORTED_VERSION,
  ErrorCode.UNSUPPORTED_SUITE,
  ErrorCode.FORBIDDEN,
  ErrorCode.NOT_MEMBER,
  ErrorCode.UNKNOWN_EPOCH,
];

/** A counter whose value is the GW's own count, read at scrape time. */
function countOf(c: Counter<string>, labels: Record<string, string>, value: number): void {
  if (Number.isFinite(value) && value > 0) c.inc(labels, value);
}

export class GatewayMetrics {
  readonly #registry: Registry;

  /** `source` is read at each scrape, once per metric (e.g. `() => gw.stats()`). */
  constructor(source: () => GatewayStats, opts: RegistryOptions = {}) {
    this.#registry = createRegistry(opts);
    const registers = [this.#registry];
    new Gauge({
      name: 'cpns_gw_sessions',
      help: 'Open sessions of this GW by kind: pne (authenticated PNEs), enroll (anonymous enrollment), server (up to the CPNS Server)',
      labelNames: ['kind'],
      registers,
      collect() {
        const { sessions } = source();
        for (const kind of SESSION_KINDS) this.set({ kind }, sessions[kind]);
      },
    });
    const counter = (name: string, help: string, read: (s: GatewayStats) => number) =>
      new Counter({
        name,
        help,
        registers,
        collect() {
          this.reset();
          countOf(this, {}, read(source()));
        },
      });
    counter(
      'cpns_gw_broadcasts_total',
      'Group Key broadcasts sent (one per Service Group epoch delivered by broadcast)',
      (s) => s.broadcasts,
    );
    counter('cpns_gw_broadcast_datagrams_total', 'Broadcast datagrams sent', (s) => s.broadcastDatagrams);
    counter(
      'cpns_gw_fallbacks_total',
      'PNEs given a Group Key by unicast after not acknowledging its broadcast in time',
      (s) => s.fallbacks,
    );
    new Counter({
      name: 'cpns_gw_drops_total',
      help: 'Group messages dropped by this GW (refused from a PNE, or unreadable from the server), by error code',
      labelNames: ['code'],
      registers,
      collect() {
        this.reset();
        for (const code of GATEWAY_DROP_CODES) this.inc({ code }, 0);
        const drops = new Map<string, number>();
        for (const [code, n] of Object.entries(source().drops)) {
          const l = label(code);
          drops.set(l, (drops.get(l) ?? 0) + n);
        }
        for (const [code, n] of drops) countOf(this, { code }, n);
      },
    });
  }

  get contentType(): string {
    return this.#registry.contentType;
  }

  text(): Promise<string> {
    return this.#registry.metrics();
  }
}
