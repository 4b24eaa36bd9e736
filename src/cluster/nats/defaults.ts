/**
 * Every limit and timeout of the JetStream event bus in one object (docs/cluster.md "Stream and consumers").
 * `JetStreamBusOptions` takes any subset of these names. All of them work on nats-server 2.9.10 (Debian 12): no
 * per-message TTL, no batch publish, no 2.10+ stream or consumer fields.
 */
import { EVENT_LIMITS } from '../events.js';

export const NATS_BUS_DEFAULTS = {
  // ------------------------------------------------------------------ relay (NATS core, no stream)
  /** Subject prefix of relayed group frames: `cpns.relay.<nodeId>` (the sending node). */
  relaySubjectPrefix: 'cpns.relay.',
  /**
   * Largest relayed payload, in bytes: the largest group message (core/group/receiver.ts
   * DEFAULT_MAX_MESSAGE_BYTES, 65,536 bytes of plaintext plus header, tag and signature) with room to spare.
   */
  maxRelayBytes: 80 * 1024,
  // ------------------------------------------------------------------ stream
  /** The one stream of cluster events. */
  stream: 'CPNS_EVENTS',
  /** Its subjects: every event is `cpns.ev.<type>`. */
  subjects: 'cpns.ev.>',
  /** Copies of the stream (and of the durable consumers) kept by the NATS cluster. */
  replicas: 3,
  /**
   * How long the stream remembers a published idempotency id (`Nats-Msg-Id`): a re-publish of the same outbox
   * row within this window is stored once. The outbox relay must re-publish well within it.
   */
  duplicateWindowMs: 10 * 60_000,
  /** Events older than this are dropped from the stream: a node down for longer must resync from the store. */
  maxAgeMs: 7 * 24 * 3600_000,
  /** Size cap of the stream; the oldest events go first. */
  maxStreamBytes: 1024 * 1024 * 1024,
  /**
   * Largest message the stream accepts (the server refuses bigger ones at publish). Above `maxEventBytes` so a
   * message between the two still reaches the consumers, which refuse it with TOO_LARGE.
   */
  maxStreamMsgBytes: 64 * 1024,

  // ------------------------------------------------------------------ events
  ...EVENT_LIMITS,

  // ------------------------------------------------------------------ connection
  /** Name of the NATS connection (shown by the server's monitoring). */
  connectionName: 'cpns-server',
  /** Timeout of the first connection to any of the URLs. */
  connectTimeoutMs: 5_000,
  /** Wait between reconnect attempts to the URL list (attempts never stop while the bus is open). */
  reconnectWaitMs: 250,
  /** Client pings; a connection missing `maxPingOut` pongs is treated as lost and reconnected. */
  pingIntervalMs: 5_000,
  maxPingOut: 2,
  /** `ping()` (the readiness probe's check of the bus) waits this long for the NATS server's answer. */
  pingTimeoutMs: 2_000,

  // ------------------------------------------------------------------ publish
  /**
   * One publish attempt waits this long for the stream's ack. Short, because a retry is harmless (same id, stored
   * once) and, during a stream leader election, the first attempt after the new leader is up ends the pause.
   */
  publishAttemptTimeoutMs: 1_000,
  /** A publish is retried (same idempotency id, so never stored twice) until this much time has passed. */
  publishDeadlineMs: 30_000,
  /** Backoff between publish attempts: doubling from the first, capped at the second. */
  publishRetryMinMs: 50,
  publishRetryMaxMs: 1_000,
  /** Longest idempotency id (the outbox row id as text). */
  maxIdChars: 128,

  // ------------------------------------------------------------------ consumers
  /** Prefix of the per-node durable consumer: `<prefix><nodeId>`. */
  consumerPrefix: 'node-',
  /**
   * Events handed out and not yet acknowledged, per node. 1 keeps delivery in strict stream order even across
   * redeliveries; more gives throughput at the cost of a redelivered event arriving after later ones.
   */
  maxAckPending: 1,
  /** An unacknowledged event is redelivered after this long (the handler's progress extends it). */
  ackWaitMs: 10_000,
  /** While a handler runs, progress is signalled this often so the event is not redelivered meanwhile. */
  workingIntervalMs: 3_000,
  /** A failed handler is retried on the same event after this long (the subscription does not skip it). */
  handlerRetryMs: 500,
  /** Timeout of the acknowledgement confirmed by the server. */
  ackTimeoutMs: 5_000,
  /** Pull batch and request expiry of the consumer's pull loop. */
  pullBatch: 64,
  pullExpiresMs: 5_000,
  /** Timeout of stream/consumer management requests (create, info). */
  managementTimeoutMs: 10_000,
} as const;

type Widen<T> = T extends string ? string : T extends number ? number : T;

export type NatsBusLimits = {
  readonly [K in keyof typeof NATS_BUS_DEFAULTS]: Widen<(typeof NATS_BUS_DEFAULTS)[K]>;
};
