/**
 * Revocation (docs/protocol.md "Revocation"): the identity and its certificate serial are refused from now on; a
 * revoked GW's sessions close and its PN's SGs get a new key; a revoked PNE's tunnels close, its GW is told to
 * drop it, and it leaves every SG (a new key each).
 */
import { ErrorCode } from '../core/errors.js';
import { fail } from '../protocol/control.js';
import { parseIdentity } from '../transport/ca.js';
import { CloseCode } from '../transport/session.js';
import { emit } from './events.js';
import { removeMember } from './groups.js';
import { rekeyGroupsOf } from './keys.js';
import { OPERATOR, type ServerState } from './state.js';

export async function revoke(srv: ServerState, identity: string): Promise<void> {
  let role: string;
  try {
    role = parseIdentity(identity).role;
  } catch {
    fail(ErrorCode.INVALID_ARGUMENT, 'identity');
  }
  const idn = await srv.store.getIdentity(identity);
  if (!idn) fail(ErrorCode.NOT_FOUND, 'identity');
  await srv.store.revokeIdentity(identity);
  srv.revokedIds.add(identity);
  srv.revokedSerials.add(idn.certSerial);
  await srv.store.appendAudit({ actor: OPERATOR, action: 'identity.revoke', subject: identity });
  emit(srv, { kind: 'identity.revoke', identity });
  srv.log.warn({ identity }, 'identity revoked');
  if (role === 'gw') {
    srv.secure.closeSessionsOf(identity, CloseCode.REVOKED, 'revoked');
    const pnes = await srv.store.deregisterGateway(identity);
    for (const p of pnes) srv.pneAt.delete(p);
    await rekeyGroupsOf(srv, pnes, 'revoke', OPERATOR);
    return;
  }
  for (const t of srv.tunnels.get(identity) ?? []) t.ms.destroy();
  const gw = srv.pneAt.get(identity);
  if (gw !== undefined) {
    // Server -> GW pne.detach: "drop this PNE and refuse it" (docs/protocol.md, Revocation).
    try {
      srv.gwConns.get(gw)?.control.send({ t: 'pne.detach', pneId: identity });
    } catch {}
    srv.gwConns.get(gw)?.attached.delete(identity);
    await srv.store.detachPne(identity);
    srv.pneAt.delete(identity);
  }
  for (const st of [...srv.groups.values()]) {
    if (st.members.has(identity)) await removeMember(srv, st.sgId, identity, 'revoke', OPERATOR);
  }
}
