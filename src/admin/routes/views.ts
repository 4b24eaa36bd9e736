/**
 * Store records as the API returns them. The response schemas (schemas.ts) serialize them, so a field not
 * declared there is dropped even if a record carried it.
 */
import type { DeliveryStatus, KeyMeta, ServiceGroup, Store } from '../../store/store.js';
import { ApiError } from '../errors.js';

const SUITE_NAMES: Readonly<Record<number, string>> = { 1: 'aes-256-gcm', 2: 'chacha20-poly1305' };

/** The group, or 404 NOT_FOUND on `sgId`. */
export async function requireGroup(store: Store, sgId: string): Promise<ServiceGroup> {
  const g = await store.getGroup(sgId);
  if (!g) throw new ApiError(404, 'NOT_FOUND', 'no such Service Group', 'sgId');
  return g;
}

export const statusOf = async (store: Store, sgId: string): Promise<DeliveryStatus> =>
  store.deliveryStatus(sgId);

/** Bodies and paths may name a PNE by its bare UUID. */
export const normPne = (p: string): string => (p.startsWith('urn:cpns:pne:') ? p : `urn:cpns:pne:${p}`);

/** Each member's delivery state, with the time it joined. */
export async function memberStates(store: Store, sgId: string, st: DeliveryStatus) {
  const joined = new Map((await store.listMembers(sgId)).map((m) => [m.pneId, m.joinedAt]));
  return st.members.map((m) => ({
    pneId: m.pneId,
    gwId: m.gwId,
    online: m.online,
    joinedAt: joined.get(m.pneId) ?? null,
    ackedEpoch: m.ackedEpoch,
    ackedAt: m.ackedAt,
    method: m.method,
    lag: m.lag,
  }));
}

/** A Service Group with its policy, current epoch and member ids. */
export async function groupView(store: Store, g: ServiceGroup) {
  const [st, members] = await Promise.all([statusOf(store, g.sgId), store.listMembers(g.sgId)]);
  return wireGroup(
    g,
    st.currentEpoch,
    members.map((m) => m.pneId),
  );
}

function wireGroup(g: ServiceGroup, currentEpoch: number, members: string[]) {
  return {
    sgId: g.sgId,
    name: g.name,
    ownerId: g.ownerId,
    joinPolicy: g.joinPolicy,
    suite: SUITE_NAMES[g.suite] ?? 'aes-256-gcm',
    sourceAuth: g.sourceAuth,
    updateOnJoin: g.updateOnJoin,
    rekeyIntervalSec: g.rekeyIntervalSec,
    deliveryPolicy: g.deliveryPolicy,
    createdAt: g.createdAt,
    currentEpoch,
    memberCount: members.length,
    members,
  };
}

/** Key metadata of one epoch: never the key bytes. */
export const keyEpoch = (k: KeyMeta) => ({
  epoch: k.epoch,
  createdAt: k.createdAt,
  reason: k.reason,
  activateAt: k.activateAt,
});
