/**
 * Prometheus metrics of the CPNS Server (prom-client), and (gateway.ts, http.ts) a PN GW's. One private registry
 * per instance (registry.ts), so two servers in one process (tests, `cpns demo`) never share or double-register
 * metrics. Label values are bounded sets chosen by us (roles, rekey reasons, error codes): never identities,
 * group ids or anything from a client. The label values we know are exported at 0 from the start, so a rate over
 * a series that has not moved yet is 0, not absent.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { rekeyReasons } from '../core/codec/index.js';
import { ErrorCode } from '../core/errors.js';
import { createRegistry, label } from './registry.js';

export { GATEWAY_METRIC_NAMES, GatewayMetrics, type GatewayStats } from './gateway.js';
export { type MetricsEndpoint, type MetricsEndpointOptions, serveMetrics } from './http.js';
export { DROPPED_DEFAULT_METRICS } from './registry.js';

export type SessionRole = 'gw' | 'pne' | 'enroll';

const SESSION_ROLES: readonly SessionRole[] = ['gw', 'pne', 'enroll'];

/** The reasons of a new Group Key epoch: the wire's, and 'restart' (a store reason: an unclean start's update). */
const KEY_UPDATE_REASONS: readonly string[] = [...rekeyReasons, 'restart'];

/**
 * The codes of the server's relay refusals (docs/protocol.md rule R1; server/decisions.ts `relayEnvelope`,
 * `admitRelay`; the group header check of core/group/header.ts).
 */
export const RELAY_REFUSAL_CODES: readonly ErrorCode[] = [
  ErrorCode.UNEXPECTED_MESSAGE,
  ErrorCode.TOO_LARGE,
  ErrorCode.MALFORMED,
  ErrorCode.UNSUPPORTED_VERSION,
  ErrorCode.UNSUPPORTED_SUITE,
  ErrorCode.NOT_FOUND,
  ErrorCode.FORBIDDEN,
  ErrorCode.NOT_MEMBER,
  ErrorCode.UNKNOWN_EPOCH,
  ErrorCode.EXPIRED_EPOCH,
  ErrorCode.REPLAY,
];

/** Every metric name this module exposes (docs/operator.md lists them; tests check them). */
export const METRIC_NAMES = [
  'cpns_sessions',
  'cpns_service_groups',
  'cpns_sg_members',
  'cpns_key_updates_total',
  'cpns_key_ack_latency_seconds',
  'cpns_members_lagging',
  'cpns_relay_refusals_total',
  'cpns_relayed_messages_total',
  'cpns_relayed_bytes_total',
  'cpns_cluster_gateways',
  'cpns_build_info',
] as const;

export interface CpnsMetricsOptions {
  /** Collect prom-client's default process metrics (CPU, memory, event loop, GC). Default true. */
  defaultMetrics?: boolean;
}

export class CpnsMetrics {
  readonly #registry: Registry;
  readonly #sessions: Gauge<'role'>;
  readonly #groups: Gauge;
  readonly #members: Gauge;
  readonly #keyUpdates: Counter<'reason'>;
  readonly #ackLatency: Histogram;
  readonly #lagging: Gauge;
  readonly #relayRefusals: Counter<'code'>;
  readonly #relayedMessages: Counter;
  readonly #relayedBytes: Counter;
  readonly #gwsByNode: Gauge<'node'>;

  constructor(opts: CpnsMetricsOptions = {}) {
    this.#registry = createRegistry(opts);
    const registers = [this.#registry];
    this.#sessions = new Gauge({
      name: 'cpns_sessions',
      help: 'Open authenticated sessions by peer role',
      labelNames: ['role'],
      registers,
    });
    for (const role of SESSION_ROLES) this.#sessions.set({ role }, 0);
    this.#groups = new Gauge({ name: 'cpns_service_groups', help: 'Service Groups', registers });
    this.#members = new Gauge({
      name: 'cpns_sg_members',
      help: 'Service Group memberships (sum over all Service Groups)',
      registers,
    });
    this.#keyUpdates = new Counter({
      name: 'cpns_key_updates_total',
      help: 'Group Key creations and updates by reason',
      labelNames: ['reason'],
      registers,
    });
    for (const reason of KEY_UPDATE_REASONS) this.#keyUpdates.inc({ reason }, 0);
    this.#ackLatency = new Histogram({
      name: 'cpns_key_ack_latency_seconds',
      help: 'Time from a Group Key update to the last member acknowledgement',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers,
    });
    this.#lagging = new Gauge({
      name: 'cpns_members_lagging',
      help: 'Members whose acknowledged epoch is behind their Service Group current epoch',
      registers,
    });
    // Formerly cpns_decrypt_failures_total: the server never decrypts, it refuses to relay (CHANGELOG).
    this.#relayRefusals = new Counter({
      name: 'cpns_relay_refusals_total',
      help: 'Group messages the server refused to relay (rule R1), by error code',
      labelNames: ['code'],
      registers,
    });
    for (const code of RELAY_REFUSAL_CODES) this.#relayRefusals.inc({ code }, 0);
    this.#relayedMessages = new Counter({
      name: 'cpns_relayed_messages_total',
      help: 'Messages destined to a Service Group relayed by the server',
      registers,
    });
    this.#relayedBytes = new Counter({
      name: 'cpns_relayed_bytes_total',
      help: 'Bytes of Service Group messages relayed by the server',
      registers,
    });
    this.#gwsByNode = new Gauge({
      name: 'cpns_cluster_gateways',
      help: 'Online PN GWs by the server node holding their session (GW session leases, the whole cluster)',
      labelNames: ['node'],
      registers,
    });
  }

  sessionOpened(role: SessionRole): void {
    this.#sessions.inc({ role: label(role) });
  }

  sessionClosed(role: SessionRole): void {
    this.#sessions.dec({ role: label(role) });
  }

  /** A new Group Key epoch, with its reason ('create', 'remove', 'periodic', 'operator', ...). */
  keyUpdated(reason: string): void {
    this.#keyUpdates.inc({ reason: label(reason) });
  }

  /** Seconds from a key update to the acknowledgement of its last member. */
  ackLatency(seconds: number): void {
    if (Number.isFinite(seconds) && seconds >= 0) this.#ackLatency.observe(seconds);
  }

  /** A group message the relay refused (from a GW, or from another cluster node), with the refusal's code. */
  relayRefused(code: string): void {
    this.#relayRefusals.inc({ code: label(code) });
  }

  relayed(bytes: number, messages = 1): void {
    this.#relayedMessages.inc(messages);
    if (bytes > 0) this.#relayedBytes.inc(bytes);
  }

  setGroups(n: number): void {
    this.#groups.set(n);
  }

  setMembers(n: number): void {
    this.#members.set(n);
  }

  setLagging(n: number): void {
    this.#lagging.set(n);
  }

  /** Online GWs per cluster node (node ids are our configuration, not client input; still bounded). */
  setGatewaysByNode(counts: ReadonlyMap<string, number>): void {
    this.#gwsByNode.reset();
    for (const [node, n] of counts) this.#gwsByNode.set({ node: label(node) }, n);
  }

  /** Content-Type of `text()` (Prometheus text exposition format). */
  get contentType(): string {
    return this.#registry.contentType;
  }

  /** The exposition text for a scrape. */
  text(): Promise<string> {
    return this.#registry.metrics();
  }
}
