/**
 * The cluster event bus as the CPNS Server sees it (docs/cluster.md). One implementation: JetStream
 * (`nats/`); there is deliberately no in-process one, tests run against a real 3-node cluster.
 *
 * - `publish(event, id)` is called after the state change committed in the store, with the id of its outbox
 *   row: a re-publish of the same id (after a crash between commit and publish) within the duplicate window is
 *   stored once and delivered once.
 * - `subscribe(nodeId, handler)` delivers every event to every node (one durable consumer per node), in the
 *   order they were stored, at least once: an event is acknowledged only when the handler's promise resolves,
 *   and a node that was down resumes after the last event it acknowledged. A handler must therefore be
 *   idempotent (a crash between handling and ack delivers that event again).
 * - An event that fails validation is refused (`onRefused` with its `CpnsError` code) and never handed to the
 *   handler; it does not stop the subscription.
 */
import type { CpnsError } from '../core/errors.js';
import type { ClusterEvent } from './events.js';

export interface PublishResult {
  /** Stream sequence of the stored event. */
  readonly seq: number;
  /** True when the id was already stored within the duplicate window: nothing new was stored. */
  readonly duplicate: boolean;
}

export interface Delivery {
  readonly event: ClusterEvent;
  /** The idempotency id given to `publish` (the outbox row id). */
  readonly id: string;
  /** Stream sequence: increases in delivery order. */
  readonly seq: number;
  /** How many times this event was delivered to this node (1 = first time). */
  readonly deliveryCount: number;
}

/** Resolve to acknowledge; throw (or reject) to have the event handed over again (after a backoff). */
export type EventHandler = (delivery: Delivery) => Promise<void> | void;

/** A received event that failed validation. Only our own values: no bytes of the event itself. */
export interface Refusal {
  readonly error: CpnsError;
  /** Stream sequence of the refused message. */
  readonly seq: number;
}

export interface SubscribeOptions {
  /** Called for every received event that failed validation (it is then terminated, never redelivered). */
  readonly onRefused?: (refusal: Refusal) => void;
  /** Called when the handler failed; the same event is retried after `handlerRetryMs`. */
  readonly onHandlerError?: (error: unknown, delivery: Delivery) => void;
}

export interface Subscription {
  /** Stop receiving; an event being handled is not acknowledged unless its handler finishes first. */
  close(): Promise<void>;
  /** Settles when the subscription ended (after `close()`, or rejects on an unrecoverable error). */
  readonly closed: Promise<void>;
}

/** A relayed group frame from another node, and the node it came from (its subject, not its bytes, says so). */
export type RelayHandler = (payload: Uint8Array, fromNode: string) => void;

export interface EventBus {
  publish(event: ClusterEvent, id: string): Promise<PublishResult>;
  subscribe(nodeId: string, handler: EventHandler, opts?: SubscribeOptions): Promise<Subscription>;
  /**
   * Relay across nodes (docs/cluster.md "Relay across nodes"): hands a group message this node admitted to every
   * other node, at most once and without storing it (a group message is not state; a node that is away misses
   * it, as a GW that is away does). Oversized payloads are refused (TOO_LARGE) before anything is sent.
   */
  relay(fromNode: string, payload: Uint8Array): void;
  /** Receives the other nodes' relayed frames (never this node's own); oversized ones are dropped and counted. */
  onRelay(nodeId: string, handler: RelayHandler): Subscription;
  /**
   * Resolves once the bus answered one round trip (the readiness probe, docs/operator.md `/readyz`); rejects
   * with a typed error when it is closed or did not answer in time (disconnected, reconnecting).
   */
  ping(): Promise<void>;
  close(): Promise<void>;
}
