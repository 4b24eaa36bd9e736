/**
 * What this node tells the other server nodes of a change it commits (docs/cluster.md "Events"): the change's
 * outbox row, written in the change's own transaction, so a committed change is announced at least once however
 * the node crashes; the outbox publisher (outbox.ts) sends it after the commit. Nothing without a cluster.
 */
import type { ClusterEventType, EventBody } from '../cluster/events.js';
import type { GroupAuditOptions, JsonObject } from '../store/store.js';
import type { ServerState } from './state.js';

/** The `outbox` option of the store call that commits the change (empty on a single node). */
export function announce<T extends ClusterEventType>(
  srv: ServerState,
  kind: T,
  body: EventBody<T>,
): Pick<GroupAuditOptions, 'outbox'> {
  // opts, not srv.cluster: changes made while starting (the restart rotation) come before the node joins the bus
  const c = srv.opts.cluster;
  // `node`: the committing node, whichever node publishes the row (outbox.ts eventOf)
  return c ? { outbox: [{ kind, body: { ...(body as unknown as JsonObject), node: c.nodeId } }] } : {};
}

/** After the commit: publish now rather than at the publisher's next tick. */
export function published(srv: ServerState): void {
  void srv.cluster?.publisher.kick();
}
