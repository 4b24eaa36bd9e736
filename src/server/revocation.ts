/**
 * Revocation (docs/protocol.md "Revocation"): the identity and its certificate serial are refused from now on; a
 * revoked GW's sessions close and its PN's SGs get a new key; a revoked PNE's tunnels close, its GW is told to
 * drop it, and it leaves every SG (a new key each). In a cluster the node that revokes does the store changes and
 * the updates; every other node cuts the identity off what it holds (`cutOff`, on `identity.revoked`).
 */
import { ErrorCode } from '../core/errors.js';
import { fail } from '../protocol/control.js';
import type { Role } from '../store/store.js';
import { parseIdentity } from '../transport/ca.js';
import { CloseCode } from '../transport/session.js';
import { announce, published } from './announce.js';
import { emit } from './events.js';
import { removeMember } from './groups.js';
import { rekeyGroupsOf } from './keys.js';
import { OPERATOR, type ServerState } from './state.js';

export async function revoke(srv: ServerState, identity: string, actor: string = OPERATOR): Promise<void> {
  let role: string;
  try {
    role = parseIdentity(identity).role;
  } catch {
    fail(ErrorCode.INVALID_ARGUMENT, 'identity');
  }
  const idn = await srv.store.getIdentity(identity);
  if (!idn) fail(ErrorCode.NOT_FOUND, 'identity');
  await srv.store.revokeIdentity(identity, undefined, announce(srv, 'identity.revoked', { identity }));
  published(srv);
  await srv.store.appendAudit({ actor, action: 'identity.revoke', subject: identity });
  emit(srv, { kind: 'identity.revoke', identity });
  srv.log.warn({ identity }, 'identity revoked');
  cutOff(srv, identity, idn.certSerial, idn.role);
  if (role === 'gw') {
    const pnes = await srv.store.deregisterGateway(identity);
    for (const p of pnes) srv.pneAt.delete(p);
    await rekeyGroupsOf(srv, pnes, 'revoke', actor);
    return;
  }
  await srv.store.detachPne(identity); // wherever it is: its GW may be held by another node
  for (const st of [...srv.groups.values()]) {
    if (st.members.has(identity)) await removeMember(srv, st.sgId, identity, 'revoke', actor);
  }
}

/**
 * What this node holds of a revoked identity, closed now: it and its certificate serial are refused from here
 * on; a GW's sessions close (its PNEs are no longer behind any GW of this node); a PNE's tunnels close and the
 * GW holding it is told to drop it (server -> GW pne.detach).
 */
export function cutOff(srv: ServerState, identity: string, certSerial: string, role: Role): void {
  srv.revokedIds.add(identity);
  srv.revokedSerials.add(certSerial);
  if (role === 'gw') {
    srv.secure.closeSessionsOf(identity, CloseCode.REVOKED, 'revoked');
    for (const [p, gw] of [...srv.pneAt]) if (gw === identity) srv.pneAt.delete(p);
    return;
  }
  for (const t of srv.tunnels.get(identity) ?? []) t.ms.destroy();
  const gw = srv.pneAt.get(identity);
  if (gw !== undefined) {
    try {
      srv.gwConns.get(gw)?.control.send({ t: 'pne.detach', pneId: identity });
    } catch {}
    srv.gwConns.get(gw)?.attached.delete(identity);
    srv.pneAt.delete(identity);
  }
}
