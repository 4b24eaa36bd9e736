/**
 * Prometheus metrics of the CPNS Server (prom-client). One private registry per `CpnsMetrics` instance, so two
 * servers in one process (tests, `cpns demo`) never share or double-register metrics. Label values are bounded
 * sets chosen by us (roles, rekey reasons, error codes): never identities, group ids or anything from a client.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export type SessionRole = 'gw' | 'pne' | 'enroll';

/** Every metric name this module exposes (docs/operator.md lists them; tests check them). */
export const METRIC_NAMES = [
  'cpns_sessions',
  'cpns_service_groups',
  'cpns_sg_members',
  'cpns_key_updates_total',
  'cpns_key_ack_latency_seconds',
  'cpns_members_lagging',
  'cpns_decrypt_failures_total',
  'cpns_relayed_messages_total',
  'cpns_relayed_bytes_total',
  'cpns_cluster_gateways',
] as const;

const LABEL_RE = /^[A-Za-z0-9_.:-]{1,64}$/;
/** Bounded label value: anything unexpected is folded into 'other' so a bug cannot explode cardinality. */
function label(v: string): string {
  return LABEL_RE.test(v) ? v : 'other';
}

export interface CpnsMetricsOptions {
  /** Collect prom-client's default process metrics (CPU, memory, event loop, GC). Default true. */
  defaultMetrics?: boolean;
}

export class CpnsMetrics {
  readonly #registry = new Registry();
  readonly #sessions: Gauge<'role'>;
  readonly #groups: Gauge;
  readonly #members: Gauge;
  readonly #keyUpdates: Counter<'reason'>;
  readonly #ackLatency: Histogram;
  readonly #lagging: Gauge;
  readonly #decryptFailures: Counter<'code'>;
  readonly #relayedMessages: Counter;
  readonly #relayedBytes: Counter;
  readonly #gwsByNode: Gauge<'node'>;

  constructor(opts: CpnsMetricsOptions = {}) {
    const registers = [this.#registry];
    this.#sessions = new Gauge({
      name: 'cpns_sessions',
      help: 'Open authenticated sessions by peer role',
      labelNames: ['role'],
      registers,
    });
    for (const role of ['gw', 'pne'] as const) this.#sessions.set({ role }, 0);
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
    this.#decryptFailures = new Counter({
      name: 'cpns_decrypt_failures_total',
      help: 'Group message decrypt / verify failures by error code',
      labelNames: ['code'],
      registers,
    });
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
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.#registry });
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

  decryptFailure(code: string): void {
    this.#decryptFailures.inc({ code: label(code) });
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
