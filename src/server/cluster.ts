/**
 * This node in a cluster of CPNS Server nodes (docs/cluster.md): changes it commits are announced through the
 * store's outbox and the event bus (outbox.ts); events from the other nodes update this node's view.
 *
 * Handled today: `key.epoch` — another node committed a Group Key epoch. This node reloads the SG from the store
 * (its members and policy as they are now: a member removed on the other node is removed here before anything
 * is delivered), reads the sealed key of that epoch from the store, and delivers it to the GWs whose sessions it
 * holds, with the grace of its reason. Idempotent: an epoch not newer than the one held is ignored.
 */
import type { EventBus, Subscription } from '../cluster/bus.js';
import type { KeyEpochCommitted } from '../cluster/events.js';
import { codeOf } from '../protocol/control.js';
import { advanceEpoch, deliver, timingOf } from './keys.js';
import { OutboxPublisher, type OutboxPublisherOptions } from './outbox.js';
import { adoptGroup, storedMembers } from './startup.js';
import { type ServerState, withSg } from './state.js';
import type { RekeyReason } from './wire.js';

export interface ClusterOptions {
  readonly bus: EventBus;
  /** This node's name in the cluster (the bus's durable consumer): `[A-Za-z0-9][A-Za-z0-9_-]{0,63}`. */
  readonly nodeId: string;
  readonly outbox?: OutboxPublisherOptions;
}

export interface ClusterLink {
  readonly nodeId: string;
  readonly publisher: OutboxPublisher;
  sub: Subscription | undefined;
}

export async function joinCluster(srv: ServerState, o: ClusterOptions): Promise<ClusterLink> {
  const link: ClusterLink = {
    nodeId: o.nodeId,
    publisher: new OutboxPublisher(srv.store, o.bus, o.nodeId, srv.log, o.outbox),
    sub: undefined,
  };
  link.sub = await o.bus.subscribe(
    o.nodeId,
    async (d) => {
      if (d.event.node === o.nodeId || srv.closed) return;
      if (d.event.type === 'key.epoch') await onRemoteEpoch(srv, d.event);
    },
    {
      onRefused: (r) => srv.log.warn({ code: r.error.code, seq: r.seq }, 'cluster event refused'),
      onHandlerError: (e) => srv.log.warn({ code: codeOf(e) }, 'cluster event not applied; retrying'),
    },
  );
  void link.publisher.kick(); // rows a crash left behind
  return link;
}

export async function leaveCluster(link: ClusterLink): Promise<void> {
  await link.sub?.close();
  await link.publisher.close();
}

/** Another node committed `ev.epoch` of `ev.sgId`: refresh the SG from the store and deliver to our GWs. */
export function onRemoteEpoch(srv: ServerState, ev: KeyEpochCommitted): Promise<void> {
  return withSg(srv, ev.sgId, async () => {
    const g = await srv.store.getGroup(ev.sgId);
    if (!g) return; // deleted meanwhile
    const members = await storedMembers(srv, ev.sgId);
    const known = srv.groups.get(ev.sgId);
    const st = known ?? adoptGroup(srv, g, members, 0);
    if (known) {
      for (const m of [...st.members]) if (!members.has(m)) st.members.delete(m);
      for (const m of members) st.members.add(m);
    }
    if (ev.epoch <= st.epoch) return;
    const k = await srv.store.getKey(ev.sgId, ev.epoch);
    if (!k) return; // pruned: a newer epoch follows
    try {
      const reason = ev.reason as RekeyReason;
      const timing = timingOf(srv, reason);
      advanceEpoch(srv, st, ev.epoch, timing);
      // A key distributed ahead of its activation keeps that activation time (the store has it).
      const activate =
        k.activateAt !== null && k.activateAt > Date.now()
          ? { at: k.activateAt, inSec: Math.ceil((k.activateAt - Date.now()) / 1000) }
          : undefined;
      deliver(
        srv,
        st,
        k.key,
        ev.epoch,
        reason,
        timing.graceSec,
        undefined,
        st.prevEpoch,
        undefined,
        activate,
      );
      srv.log.info({ sgId: ev.sgId, epoch: ev.epoch, reason }, 'group key epoch from another node delivered');
    } finally {
      k.key.fill(0);
    }
  });
}
