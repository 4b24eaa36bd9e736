/**
 * The operator's surface of the server (ServerAdmin, used by src/admin and the CLI). Every action is audited with
 * `actor`: OPERATOR in-process, `operator:<token name>` through the admin API (`asOperator`, docs/operator.md).
 */
import { randomBytes } from 'node:crypto';
import { ErrorCode } from '../core/errors.js';
import { fail, toPneIdentity } from '../protocol/control.js';
import { hashToken } from '../store/token.js';
import { SERVER_DEFAULTS } from './defaults.js';
import { addMember, addMembers, createGroup, deleteGroup, removeMember, updatePolicy } from './groups.js';
import { rekeyLocked } from './keys.js';
import { revoke } from './revocation.js';
import { groupOf, OPERATOR, operatorActor, type ServerState, withSg } from './state.js';
import type { GroupSummary, ServerAdmin } from './types.js';
import { withCause } from './update-trail.js';

export function makeAdmin(srv: ServerState, actor: string = OPERATOR): ServerAdmin {
  return {
    actor,
    asOperator: (tokenName) => makeAdmin(srv, operatorActor(tokenName)),
    withCause,
    createToken: async (role, ttlSec = SERVER_DEFAULTS.tokenTtlSec, label) => {
      if (role !== 'gw' && role !== 'pne') fail(ErrorCode.INVALID_ARGUMENT, 'role');
      const token = randomBytes(24).toString('base64url');
      await srv.store.createToken({
        tokenHash: hashToken(token),
        role,
        ttlSec,
        ...(label !== undefined ? { label } : {}),
      });
      await srv.store.appendAudit({
        actor,
        action: 'token.create',
        subject: role,
        ...(label !== undefined ? { detail: { label } } : {}),
      });
      return token;
    },
    revoke: (identity) => revoke(srv, identity, actor),
    createGroup: (o) => createGroup(srv, o, actor),
    deleteGroup: (sgId) => deleteGroup(srv, sgId, actor),
    updatePolicy: (sgId, patch) => updatePolicy(srv, sgId, patch, actor),
    addMember: (sgId, pne) => addMember(srv, sgId, toPneIdentity(pne), actor),
    addMembers: (sgId, pnes) => addMembers(srv, sgId, pnes.map(toPneIdentity), actor),
    removeMember: (sgId, pne) => removeMember(srv, sgId, toPneIdentity(pne), 'remove', actor),
    rekey: async (sgId) => {
      const epoch = await withSg(srv, sgId, () => rekeyLocked(srv, groupOf(srv, sgId), 'operator', actor));
      return { epoch };
    },
    createAdminToken: async (name, scope) => {
      // 256 random bits: stored as SHA-256 only, so a fast hash is enough (nothing to guess, docs/operator.md).
      const token = randomBytes(32).toString('base64url');
      await srv.store.createAdminToken(
        { name, scope, tokenHash: hashToken(token) },
        { audit: [{ actor, action: 'admin-token.create', subject: name, detail: { scope } }] },
      );
      return token;
    },
    listAdminTokens: () => srv.store.listAdminTokens(),
    revokeAdminToken: (name) =>
      srv.store.revokeAdminToken(name, undefined, {
        audit: [{ actor, action: 'admin-token.revoke', subject: name }],
      }),
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
      // Acks are written in batches (delivery-writer.ts): the queued ones go first, so the status shows every
      // ack the server accepted before this call. (The admin HTTP routes read the store: within deliveryBatchMs.)
      await srv.deliveries.flush();
      return srv.store.deliveryStatus(sgId);
    },
  };
}
