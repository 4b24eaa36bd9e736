/**
 * Start and stop of the CPNS Server's state: the CA (created once, kept in the store), the server's own
 * certificate, the caches rebuilt from the store at start, and the clean-shutdown marker that decides whether
 * the relay marks (replay anchors) survive a restart.
 */
import { codeOf } from '../protocol/control.js';
import type { ServiceGroup, Store } from '../store/store.js';
import { type Ca, createCa, formatIdentity, issueServerCert, loadCa } from '../transport/ca.js';
import { SERVER_DEFAULTS } from './defaults.js';
import { rekeyLocked, startTimer } from './keys.js';
import { flushMarks } from './relay.js';
import { newSgState, type ServerState, type SgState, withSg } from './state.js';
import { asDeliveryPolicy } from './wire.js';

const SECRET_CA_CERT = 'ca.cert';
const SECRET_CA_KEY = 'ca.key';
/** Present only between a graceful close (relay marks flushed) and the next start. */
const SECRET_CLEAN = 'relay.clean-shutdown';

/** The clean-shutdown marker is per node in a cluster: one node's clean stop says nothing of another's crash. */
const cleanMarker = (srv: ServerState): string =>
  srv.opts.cluster ? `${SECRET_CLEAN}.${srv.opts.cluster.nodeId}` : SECRET_CLEAN;

/** The CPNS CA: created at the first start, kept (encrypted) in the store from then on. */
export async function loadOrCreateCa(store: Store): Promise<Ca> {
  let certPem = (await store.getSecret(SECRET_CA_CERT))?.toString('utf8');
  let keyPem = (await store.getSecret(SECRET_CA_KEY))?.toString('utf8');
  if (certPem === undefined || keyPem === undefined) {
    const pair = await createCa('CPNS CA');
    await store.putSecret(SECRET_CA_CERT, Buffer.from(pair.certPem));
    await store.putSecret(SECRET_CA_KEY, Buffer.from(pair.keyPem));
    await store.appendAudit({ actor: 'server', action: 'ca.create' });
    certPem = pair.certPem;
    keyPem = pair.keyPem;
  }
  return loadCa({ certPem, keyPem });
}

/** The server's TLS certificate (identity `urn:cpns:server:<name>`), fresh at every start, for `host`. */
export async function issueOwnCert(
  ca: Ca,
  serverName: string,
  host: string,
): Promise<{ identity: string; certPem: string; keyPem: string }> {
  const identity = formatIdentity('server', serverName);
  const isIp = /^[0-9.]+$|:/.test(host);
  const sc = await issueServerCert(ca, identity, {
    ips: ['127.0.0.1', '::1', ...(isIp && host !== '0.0.0.0' ? [host] : [])],
    dnsNames: ['localhost', ...(isIp ? [] : [host])],
  });
  return { identity, certPem: sc.certPem, keyPem: sc.keyPem };
}

/** At a graceful close: relay marks flushed, then the marker that lets the next start keep the epochs. */
export async function saveCleanShutdown(srv: ServerState): Promise<void> {
  await flushMarks(srv);
  await srv.store.putSecret(cleanMarker(srv), Buffer.from([1]));
}

/** Rebuilds the caches from the store; after a crash, every SG's key is rotated once. */
export async function loadState(srv: ServerState): Promise<void> {
  for (const idn of await srv.store.listIdentities()) {
    if (idn.revokedAt !== null) {
      srv.revokedIds.add(idn.id);
      srv.revokedSerials.add(idn.certSerial);
    }
  }
  const heldElsewhere = await gwsHeldByOtherNodes(srv);
  for (const pn of await srv.store.listPns()) {
    for (const p of pn.pnes) srv.pneAt.set(p.pneId, pn.gwId);
    // Nothing is online here yet; a PN another node of the cluster serves stays as that node says.
    if (heldElsewhere.has(pn.gwId)) continue;
    if (pn.online) await srv.store.setOnline(pn.gwId, false);
    for (const p of pn.pnes) if (p.online) await srv.store.setOnline(p.pneId, false);
  }
  for (const g of await srv.store.listGroups()) {
    const cur = await srv.store.getCurrentKey(g.sgId);
    const epoch = cur?.epoch ?? 0;
    cur?.key.fill(0);
    adoptGroup(srv, g, await storedMembers(srv, g.sgId), epoch);
  }
  const clean = await srv.store.getSecret(cleanMarker(srv));
  if (clean) {
    // Graceful restart: relay marks were flushed, so replay anchors survive; keep the epochs.
    await srv.store.deleteSecret(cleanMarker(srv));
    for (const st of srv.groups.values()) {
      const m = new Map<string, number>();
      for (const r of await srv.store.listRelayMarks(st.sgId, st.epoch))
        m.set(`${r.sender}|${r.instance}`, r.counter);
      if (m.size > 0) srv.marks.set(`${st.sgId}|${st.epoch}`, m);
      await trackStoredAcks(srv, st);
    }
    await srv.store.appendAudit({ actor: 'server', action: 'server.start', reason: 'clean' });
  } else if (srv.groups.size > 0) {
    // Crash (or first start of an old database): relay marks may be stale, so rotate every SG's key once
    // (docs/group-messages.md "restart policy"): fresh epochs, fresh replay windows everywhere.
    await srv.store.appendAudit({ actor: 'server', action: 'server.start', reason: 'unclean' });
    for (const st of srv.groups.values()) {
      await withSg(srv, st.sgId, () => rekeyLocked(srv, st, 'periodic', 'server', 'restart'));
    }
  }
  srv.flushTimer = setInterval(() => {
    flushMarks(srv).catch((e) => srv.log.warn({ code: codeOf(e) }, 'relay mark flush failed'));
  }, srv.opts.relayMarkFlushMs ?? SERVER_DEFAULTS.relayMarkFlushMs);
  srv.flushTimer.unref();
}

/**
 * The ack tracker of the SG's current epoch as the store has it (one status query per SG, at start only): who
 * acked it is acked. No ack latency for it: its update happened before this start. (After a crash there is
 * nothing to rebuild: every SG gets a fresh epoch, tracked from its update.)
 */
async function trackStoredAcks(srv: ServerState, st: SgState): Promise<void> {
  if (st.epoch === 0) return;
  const status = await srv.store.deliveryStatus(st.sgId);
  const acked = status.members.filter((m) => (m.ackedEpoch ?? 0) >= st.epoch).map((m) => m.pneId);
  srv.acks.start(st.sgId, st.epoch, st.members, undefined, acked);
}

/** GWs whose session lease another node of the cluster holds (none on a single node). */
async function gwsHeldByOtherNodes(srv: ServerState): Promise<Set<string>> {
  const me = srv.opts.cluster?.nodeId;
  if (me === undefined) return new Set();
  return new Set((await srv.store.listGwLeases()).filter((l) => l.nodeId !== me).map((l) => l.gwId));
}

/** The SG's members as the store has them now. */
export async function storedMembers(srv: ServerState, sgId: string): Promise<Set<string>> {
  return new Set((await srv.store.listMembers(sgId)).map((m) => m.pneId));
}

/** Takes a stored SG into this server's view at `epoch` (start-up, or an SG another cluster node created). */
export function adoptGroup(srv: ServerState, g: ServiceGroup, members: Set<string>, epoch: number): SgState {
  const st = newSgState({ ...g, members, epoch, deliveryPolicy: asDeliveryPolicy(g.deliveryPolicy) });
  srv.groups.set(g.sgId, st);
  startTimer(srv, st);
  return st;
}
