/** The operator's surface of the server (ServerAdmin, used by src/admin and the CLI): every action as OPERATOR. */
import { randomBytes } from 'node:crypto';
import { ErrorCode } from '../core/errors.js';
import { fail, toPneIdentity } from '../protocol/control.js';
import { hashToken } from '../store/token.js';
import { SERVER_DEFAULTS } from './defaults.js';
import { addMember, addMembers, createGroup, deleteGroup, removeMember, updatePolicy } from './groups.js';
import { rekeyLocked } from './keys.js';
import { revoke } from './revocation.js';
import { groupOf, OPERATOR, type ServerState, withSg } from './state.js';
import type { GroupSummary, ServerAdmin } from './types.js';

export function makeAdmin(srv: ServerState): ServerAdmin {
  return {
    createToken: async (role, ttlSec = SERVER_DEFAULTS.tokenTtlSec) => {
      if (role !== 'gw' && role !== 'pne') fail(ErrorCode.INVALID_ARGUMENT, 'role');
      const token = randomBytes(24).toString('base64url');
      await srv.store.createToken({ tokenHash: hashToken(token), role, ttlSec });
      await srv.store.appendAudit({ actor: OPERATOR, action: 'token.create', subject: role });
      return token;
    },
    revoke: (identity) => revoke(srv, identity),
    createGroup: (o) => createGroup(srv, o, OPERATOR),
    deleteGroup: (sgId) => deleteGroup(srv, sgId, OPERATOR),
    updatePolicy: (sgId, patch) => updatePolicy(srv, sgId, patch),
    addMember: (sgId, pne) => addMember(srv, sgId, toPneIdentity(pne), OPERATOR),
    addMembers: (sgId, pnes) => addMembers(srv, sgId, pnes.map(toPneIdentity), OPERATOR),
    removeMember: (sgId, pne) => removeMember(srv, sgId, toPneIdentity(pne), 'remove', OPERATOR),
    rekey: async (sgId) => {
      const epoch = await withSg(srv, sgId, () => rekeyLocked(srv, groupOf(srv, sgId), 'operator', OPERATOR));
      return { epoch };
    },
    listPns: () => srv.store.listPns(),
    listGroups: async () => {
      const out: GroupSummary[] = [];
      for (const g of await srv.store.listGroups()) {
        const st = srv.groups.get(g.sgId);
        out.push({ ...g, currentEpoch: st?.epoch ?? 0, members: [...(st?.members ?? [])].sort() });
      }
      return out;
    },
    groupStatus: async (sgId) => {
      groupOf(srv, sgId);
      return srv.store.deliveryStatus(sgId);
    },
  };
}
