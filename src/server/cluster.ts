/**
 * This node in a cluster of CPNS Server nodes (docs/cluster.md): changes it commits are announced through the
 * store's outbox and the event bus (outbox.ts); events from the other nodes update this node's view.
 *
 * Every event type is applied by cluster-apply.ts; group messages go between nodes by the bus's relay
 * (relay.ts `relayFromNode`), not the stream.
 */
import { randomBytes } from 'node:crypto';
import type { EventBus, Subscription } from '../cluster/bus.js';
import { codeOf } from '../protocol/control.js';
import { applyRemote } from './cluster-apply.js';
import { OutboxPublisher, type OutboxPublisherOptions } from './outbox.js';
import { relayFromNode } from './relay.js';
import type { ServerState } from './state.js';

export interface ClusterOptions {
  readonly bus: EventBus;
  /** This node's name in the cluster (the bus's durable consumer): `[A-Za-z0-9][A-Za-z0-9_-]{0,63}`. */
  readonly nodeId: string;
  readonly outbox?: OutboxPublisherOptions;
}

export interface ClusterLink {
  readonly nodeId: string;
  readonly bus: EventBus;
  readonly publisher: OutboxPublisher;
  sub: Subscription | undefined;
  relaySub: Subscription | undefined;
}

export async function joinCluster(srv: ServerState, o: ClusterOptions): Promise<ClusterLink> {
  const link: ClusterLink = {
    nodeId: o.nodeId,
    bus: o.bus,
    publisher: new OutboxPublisher(srv.store, o.bus, o.nodeId, srv.log, {
      storeId: await storeIdOf(srv),
      ...o.outbox,
    }),
    sub: undefined,
    relaySub: undefined,
  };
  link.sub = await o.bus.subscribe(
    o.nodeId,
    async (d) => {
      if (srv.closed) return;
      // `node` is the node that committed the change (outbox.ts eventOf), whoever published it: this node's own
      // changes are already in its view. A key.epoch is applied in any case (idempotent by epoch), which also
      // covers rows written before the outbox recorded the committing node.
      if (d.event.node === o.nodeId && d.event.type !== 'key.epoch') return;
      await applyRemote(srv, d.event);
    },
    {
      onRefused: (r) => srv.log.warn({ code: r.error.code, seq: r.seq }, 'cluster event refused'),
      onHandlerError: (e) => srv.log.warn({ code: codeOf(e) }, 'cluster event not applied; retrying'),
    },
  );
  // Relay across nodes: group messages other nodes admitted, fanned out to the GWs this node holds.
  link.relaySub = o.bus.onRelay(o.nodeId, (payload) => relayFromNode(srv, payload));
  void link.publisher.kick(); // rows a crash left behind
  return link;
}

const STORE_ID_SECRET = 'cluster.store-id';

/**
 * This database's id for the outbox's idempotency ids (outbox.ts `storeId`): created by the first node, read by the
 * others. Two nodes creating it at once: the last write wins and is read back by both; one that read the other's
 * first only causes duplicate events for a moment (handlers are idempotent).
 */
async function storeIdOf(srv: ServerState): Promise<string> {
  const have = await srv.store.getSecret(STORE_ID_SECRET);
  if (have && have.length === 8) return have.toString('hex');
  await srv.store.putSecret(STORE_ID_SECRET, randomBytes(8));
  return (await srv.store.getSecret(STORE_ID_SECRET))!.toString('hex');
}

export async function leaveCluster(link: ClusterLink): Promise<void> {
  await link.relaySub?.close();
  await link.sub?.close();
  await link.publisher.close();
}
