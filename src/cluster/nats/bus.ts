/**
 * The event bus on NATS JetStream (docs/cluster.md): one stream `CPNS_EVENTS` (subjects `cpns.ev.>`, file storage,
 * 3 replicas, a duplicate window for `Nats-Msg-Id`), one durable pull consumer per server node (explicit ack,
 * deliver all, resume after the last acknowledged event), one reconnecting connection over the URL list.
 * Only nats-server 2.9.10 features; no compare-and-set is relied on (nats-server#4320, docs/store.md).
 */
import {
  AckPolicy,
  type ConsumerMessages,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  jetstream,
  jetstreamManager,
  ReplayPolicy,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
} from '@nats-io/jetstream';
import { connect, type NatsConnection, nanos } from '@nats-io/transport-node';
import { CpnsError, ErrorCode, isCpnsError } from '../../core/errors.js';
import type {
  Delivery,
  EventBus,
  EventHandler,
  PublishResult,
  RelayHandler,
  SubscribeOptions,
  Subscription,
} from '../bus.js';
import { type ClusterEvent, decodeEvent, encodeEvent, subjectOf } from '../events.js';
import { NATS_BUS_DEFAULTS, type NatsBusLimits } from './defaults.js';

export interface JetStreamBusOptions extends Partial<NatsBusLimits> {
  /** NATS URLs of the cluster, e.g. `nats://10.0.0.1:4222`; the client reconnects over all of them. */
  readonly servers: readonly string[];
}

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9:._-]*$/;
const NODE_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
const MSG_ID_HEADER = 'Nats-Msg-Id';

function resolveOptions(opts: JetStreamBusOptions): NatsBusLimits {
  const out: Record<string, unknown> = { ...NATS_BUS_DEFAULTS };
  for (const [k, v] of Object.entries(opts)) {
    if (k === 'servers' || v === undefined) continue;
    if (!Object.hasOwn(NATS_BUS_DEFAULTS, k))
      throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'unknown bus option', k);
    const d = (NATS_BUS_DEFAULTS as Record<string, unknown>)[k];
    if (typeof d === 'number' && (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1))
      throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'bus option must be a positive integer', k);
    if (typeof d === 'string' && (typeof v !== 'string' || v.length === 0))
      throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'bus option must be a non-empty string', k);
    out[k] = v;
  }
  const r = out as NatsBusLimits;
  if (r.maxEventBytes > r.maxStreamMsgBytes)
    throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'maxEventBytes above maxStreamMsgBytes', 'maxEventBytes');
  return r;
}

/** A sleep that ends early when `signal` aborts. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

const isApiError = (e: unknown, code: number): boolean => e instanceof JetStreamApiError && e.code === code;

function checkId(id: unknown, max: number): string {
  if (typeof id !== 'string' || id.length === 0 || id.length > max || !ID_RE.test(id))
    throw new CpnsError(ErrorCode.SCHEMA, 'not an idempotency id', 'id');
  return id;
}

/** Open the bus: connect to the cluster and make sure the stream exists with our configuration. */
export async function openJetStreamBus(options: JetStreamBusOptions): Promise<JetStreamBus> {
  const cfg = resolveOptions(options);
  if (!Array.isArray(options.servers) || options.servers.length === 0)
    throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'no NATS server URL', 'servers');
  const nc = await connect({
    servers: [...options.servers],
    name: cfg.connectionName,
    timeout: cfg.connectTimeoutMs,
    maxReconnectAttempts: -1,
    reconnectTimeWait: cfg.reconnectWaitMs,
    pingInterval: cfg.pingIntervalMs,
    maxPingOut: cfg.maxPingOut,
  });
  try {
    const jsm = await jetstreamManager(nc, { timeout: cfg.managementTimeoutMs });
    const bus = new JetStreamBus(nc, jetstream(nc, { timeout: cfg.publishAttemptTimeoutMs }), jsm, cfg);
    await bus.ensureStream();
    return bus;
  } catch (e) {
    await nc.close();
    throw e;
  }
}

export class JetStreamBus implements EventBus {
  readonly #subs = new Set<NodeSubscription>();
  #closed = false;

  constructor(
    readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    readonly jsm: JetStreamManager,
    readonly options: NatsBusLimits,
  ) {}

  /** The stream's configuration from the options (only fields nats-server 2.9 knows). */
  streamConfig(): Partial<StreamConfig> & { name: string } {
    const o = this.options;
    return {
      name: o.stream,
      subjects: [o.subjects],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      num_replicas: o.replicas,
      duplicate_window: nanos(o.duplicateWindowMs),
      max_age: nanos(o.maxAgeMs),
      max_bytes: o.maxStreamBytes,
      max_msg_size: o.maxStreamMsgBytes,
      discard: DiscardPolicy.Old,
    };
  }

  /** Create the stream, or bring an existing one's limits to ours (retried while the cluster elects leaders). */
  async ensureStream(): Promise<void> {
    const cfg = this.streamConfig();
    await this.#retrying(async () => {
      try {
        await this.jsm.streams.info(cfg.name);
      } catch (e) {
        if (!isApiError(e, JetStreamApiCodes.StreamNotFound)) throw e;
        await this.jsm.streams.add(cfg);
        return;
      }
      const { name, storage: _storage, retention: _retention, ...mutable } = cfg;
      await this.jsm.streams.update(name, mutable);
    }, this.options.managementTimeoutMs);
  }

  async publish(event: ClusterEvent, id: string): Promise<PublishResult> {
    if (this.#closed) throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'bus is closed', 'bus');
    const msgID = checkId(id, this.options.maxIdChars);
    const data = encodeEvent(event, this.options);
    const subject = subjectOf(event.type);
    return this.#retrying(async () => {
      const pa = await this.js.publish(subject, data, {
        msgID,
        timeout: this.options.publishAttemptTimeoutMs,
        expect: { streamName: this.options.stream },
      });
      return { seq: pa.seq, duplicate: pa.duplicate };
    }, this.options.publishDeadlineMs);
  }

  /**
   * Run `fn` until it succeeds, at most one attempt per backoff step (capped doubling), or fail with TIMEOUT after
   * `deadlineMs`.
   */
  async #retrying<T>(fn: () => Promise<T>, deadlineMs: number): Promise<T> {
    const end = Date.now() + deadlineMs;
    let wait = this.options.publishRetryMinMs;
    for (;;) {
      const began = Date.now();
      try {
        return await fn();
      } catch (e) {
        if (this.#closed || this.nc.isClosed())
          throw new CpnsError(ErrorCode.TIMEOUT, 'bus closed before the request completed', 'bus', {
            cause: e,
          });
        if (Date.now() + wait > end)
          throw new CpnsError(ErrorCode.TIMEOUT, 'NATS request did not complete in time', 'bus', {
            cause: e,
          });
        // The backoff counts from the attempt's start: an attempt that timed out has waited already.
        await sleep(Math.max(0, wait - (Date.now() - began)));
        wait = Math.min(wait * 2, this.options.publishRetryMaxMs);
      }
    }
  }

  async subscribe(nodeId: string, handler: EventHandler, opts: SubscribeOptions = {}): Promise<Subscription> {
    if (this.#closed) throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'bus is closed', 'bus');
    if (typeof nodeId !== 'string' || !NODE_RE.test(nodeId))
      throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'not a node id', 'nodeId');
    const o = this.options;
    const name = `${o.consumerPrefix}${nodeId}`;
    await this.#retrying(async () => {
      try {
        await this.jsm.consumers.info(o.stream, name);
      } catch (e) {
        if (!isApiError(e, JetStreamApiCodes.ConsumerNotFound)) throw e;
        await this.jsm.consumers.add(o.stream, {
          durable_name: name,
          ack_policy: AckPolicy.Explicit,
          deliver_policy: DeliverPolicy.All,
          replay_policy: ReplayPolicy.Instant,
          filter_subject: o.subjects,
          ack_wait: nanos(o.ackWaitMs),
          max_ack_pending: o.maxAckPending,
          max_deliver: -1,
        });
        return;
      }
      await this.jsm.consumers.update(o.stream, name, {
        ack_wait: nanos(o.ackWaitMs),
        max_ack_pending: o.maxAckPending,
      });
    }, o.managementTimeoutMs);
    const consumer = await this.js.consumers.get(o.stream, name);
    const messages = await consumer.consume({ max_messages: o.pullBatch, expires: o.pullExpiresMs });
    const sub = new NodeSubscription(messages, handler, opts, o, () => this.#subs.delete(sub));
    this.#subs.add(sub);
    return sub;
  }

  relay(fromNode: string, payload: Uint8Array): void {
    if (!NODE_RE.test(fromNode)) throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'not a node id', 'nodeId');
    if (payload.length > this.options.maxRelayBytes)
      throw new CpnsError(ErrorCode.TOO_LARGE, 'relayed frame too large', 'payload');
    if (this.#closed || this.nc.isClosed()) return; // at most once: nothing to send it on
    this.nc.publish(`${this.options.relaySubjectPrefix}${fromNode}`, payload);
  }

  onRelay(nodeId: string, handler: RelayHandler): Subscription {
    if (!NODE_RE.test(nodeId)) throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'not a node id', 'nodeId');
    const prefix = this.options.relaySubjectPrefix;
    const max = this.options.maxRelayBytes;
    const sub = this.nc.subscribe(`${prefix}*`, {
      callback: (err, m) => {
        if (err) return;
        const from = m.subject.slice(prefix.length);
        // The subject names the sender; anything that is not a node id, our own, or too large is dropped.
        if (from === nodeId || !NODE_RE.test(from)) return;
        if (m.data.length > max) {
          this.relayDropped++;
          return;
        }
        try {
          handler(m.data, from);
        } catch {
          this.relayDropped++;
        }
      },
    });
    return {
      close: async () => sub.unsubscribe(),
      closed: sub.closed.then(() => undefined),
    };
  }

  /** Relayed frames received and dropped (oversized, or the handler threw). */
  relayDropped = 0;

  /** One PING/PONG with the NATS server this connection is on (while reconnecting: none, so TIMEOUT). */
  async ping(): Promise<void> {
    if (this.#closed || this.nc.isClosed())
      throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'bus is closed', 'bus');
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new CpnsError(ErrorCode.TIMEOUT, 'the bus did not answer in time', 'bus')),
        this.options.pingTimeoutMs,
      );
    });
    try {
      await Promise.race([this.nc.flush(), late]);
    } catch (e) {
      if (isCpnsError(e)) throw e;
      throw new CpnsError(ErrorCode.TIMEOUT, 'the bus did not answer', 'bus', { cause: e });
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled([...this.#subs].map((s) => s.close()));
    await this.nc.close();
  }
}

class NodeSubscription implements Subscription {
  readonly closed: Promise<void>;
  readonly #stop = new AbortController();
  /** Highest stream sequence handled in this subscription: a redelivery of it (lost ack) is acked, not re-handled. */
  #lastHandled = 0;

  constructor(
    private readonly messages: ConsumerMessages,
    private readonly handler: EventHandler,
    private readonly opts: SubscribeOptions,
    private readonly o: NatsBusLimits,
    onEnd: () => void,
  ) {
    this.closed = this.#run().finally(onEnd);
    // Observed by close() and by callers who await `closed`; never an unhandled rejection.
    this.closed.catch(() => undefined);
  }

  async #run(): Promise<void> {
    for await (const m of this.messages) {
      if (this.#stop.signal.aborted) break;
      await this.#one(m);
    }
  }

  async #one(m: JsMsg): Promise<void> {
    const seq = m.info.streamSequence;
    if (seq <= this.#lastHandled) {
      m.ack();
      return;
    }
    let delivery: Delivery;
    try {
      const event = decodeEvent(m.subject, m.data, this.o);
      const id = checkId(m.headers?.get(MSG_ID_HEADER), this.o.maxIdChars);
      delivery = { event, id, seq, deliveryCount: m.info.deliveryCount };
    } catch (e) {
      if (!isCpnsError(e)) throw e;
      this.#lastHandled = seq;
      m.term();
      this.opts.onRefused?.({ error: e, seq });
      return;
    }
    const working = setInterval(() => m.working(), this.o.workingIntervalMs);
    try {
      for (;;) {
        if (this.#stop.signal.aborted) return; // not acknowledged: delivered again to this node later
        try {
          await this.handler(delivery);
          break;
        } catch (e) {
          this.opts.onHandlerError?.(e, delivery);
          await sleep(this.o.handlerRetryMs, this.#stop.signal);
        }
      }
    } finally {
      clearInterval(working);
    }
    this.#lastHandled = seq;
    // A lost ack means one more delivery (at least once), skipped above within this subscription.
    await m.ackAck({ timeout: this.o.ackTimeoutMs }).catch(() => false);
  }

  async close(): Promise<void> {
    this.#stop.abort();
    await this.messages.close();
    await this.closed.catch(() => undefined);
  }
}
