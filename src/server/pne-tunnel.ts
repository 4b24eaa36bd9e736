import type { ControlMessage } from '../core/codec/index.js';
import { type CpnsError, ErrorCode } from '../core/errors.js';
import { Control, codeOf, decodeControl, fail, handleInOrder } from '../roles/control.js';
import { acceptTunnelTls, MessageSocket, type TunnelStream } from '../transport/tunnel.js';
import { loseAttachment, proveAttach } from './attachment.js';
import { SERVER_DEFAULTS } from './defaults.js';
import { countSession } from './events.js';
import { addMember, createGroup, deleteGroup, removeMember } from './groups.js';
import { pushSigners } from './keys.js';
import { anchors } from './relay.js';
import { type GwConn, groupOf, isRevoked, type PneTunnel, type ServerState, withSg } from './state.js';
import { WIRE_SUITE, wireReason } from './wire.js';
export function onTunnel(srv: ServerState, conn: GwConn, stream: TunnelStream): void {
  acceptTunnelTls(stream, {
    certPem: srv.serverCert.certPem,
    keyPem: srv.serverCert.keyPem,
    caPem: srv.ca.certPem,
    allowedRoles: ['pne'],
    isRevoked: (id, serial) => isRevoked(srv, id, serial),
  }).then(
    (t) => {
      const ms = new MessageSocket(t.socket, { maxMessage: SERVER_DEFAULTS.tunnelMaxMessageBytes });
      const pt: PneTunnel = {
        identity: t.peer.identity,
        ms,
        control: new Control((p) => ms.send(p)),
        gw: conn,
        queue: Promise.resolve(),
      };
      let set = srv.tunnels.get(pt.identity);
      if (!set) {
        set = new Set();
        srv.tunnels.set(pt.identity, set);
      }
      set.add(pt);
      countSession(srv, 'pne', true);
      ms.on('message', (m: Buffer) => onTunnelMessage(srv, pt, m));
      ms.once('close', () => {
        countSession(srv, 'pne', false);
        const s = srv.tunnels.get(pt.identity);
        s?.delete(pt);
        if (s?.size === 0) srv.tunnels.delete(pt.identity);
        // Its last tunnel through this GW is gone: the GW loses the PNE (rule A1).
        if ([...(s ?? [])].some((o) => o.gw === conn)) return;
        conn.queue = conn.queue.then(() => loseAttachment(srv, conn, pt.identity, false));
      });
      // The tunnel is the proof that this PNE is behind this GW (rule A1), handled in order with the GW's
      // own messages.
      conn.queue = conn.queue.then(() =>
        proveAttach(srv, conn, pt).catch((e) =>
          srv.log.warn({ code: codeOf(e), pne: pt.identity }, 'attachment not recorded'),
        ),
      );
    },
    (e) => srv.log.info({ code: (e as { code?: string }).code }, 'tunnel refused'),
  );
}

export function onTunnelMessage(srv: ServerState, pt: PneTunnel, m: Buffer): void {
  let msg: ControlMessage;
  try {
    msg = decodeControl(m);
  } catch (e) {
    pt.control.sendError(codeOf(e), undefined, (e as CpnsError).field);
    return;
  }
  if (pt.control.accept(msg)) return;
  handleInOrder(pt, pt.control, msg, (x) => handlePne(srv, pt, x), srv.log, 'PNE');
}

export async function handlePne(srv: ServerState, pt: PneTunnel, msg: ControlMessage): Promise<void> {
  if (srv.closed) return;
  if (srv.revokedIds.has(pt.identity)) {
    pt.ms.destroy();
    return;
  }
  const me = pt.identity;
  switch (msg.t) {
    case 'sg.create': {
      const r = await createGroup(
        srv,
        {
          name: msg.name,
          joinPolicy: msg.joinPolicy,
          suite: msg.suite,
          sourceAuth: msg.sourceAuth,
          rekeyIntervalSec: msg.rekeyIntervalSec,
          members: [me],
        },
        me,
      );
      pt.control.send({ t: 'sg.created', id: msg.id, sgId: r.sgId, epoch: r.epoch });
      return;
    }
    case 'sg.delete': {
      const st = groupOf(srv, msg.sgId);
      if (st.ownerId !== me) fail(ErrorCode.FORBIDDEN, 'sgId');
      await deleteGroup(srv, msg.sgId, me);
      pt.control.sendOk(msg.id);
      return;
    }
    case 'sg.join': {
      const st = groupOf(srv, msg.sgId);
      if (st.members.has(me)) fail(ErrorCode.ALREADY_MEMBER, 'sgId');
      if (st.joinPolicy === 'invite' && st.ownerId !== me && !(await srv.store.hasInvite(msg.sgId, me))) {
        fail(ErrorCode.FORBIDDEN, 'sgId');
      }
      await addMember(srv, msg.sgId, me, me);
      pt.control.sendOk(msg.id);
      return;
    }
    case 'sg.invite': {
      const st = groupOf(srv, msg.sgId);
      if (st.ownerId !== me) fail(ErrorCode.FORBIDDEN, 'sgId');
      if (st.members.has(msg.pneId)) fail(ErrorCode.ALREADY_MEMBER, 'pneId');
      await srv.store.invite(msg.sgId, msg.pneId);
      await srv.store.appendAudit({
        actor: me,
        action: 'member.invite',
        sgId: msg.sgId,
        subject: msg.pneId,
      });
      pt.control.sendOk(msg.id);
      return;
    }
    case 'sg.leave': {
      await removeMember(srv, msg.sgId, me, 'leave', me);
      pt.control.sendOk(msg.id);
      return;
    }
    case 'sg.remove': {
      const st = groupOf(srv, msg.sgId);
      if (st.ownerId !== me && msg.pneId !== me) fail(ErrorCode.FORBIDDEN, 'pneId');
      await removeMember(srv, msg.sgId, msg.pneId, msg.pneId === me ? 'leave' : 'remove', me);
      pt.control.sendOk(msg.id);
      return;
    }
    case 'pne.signkey': {
      srv.signKeys.set(me, Buffer.from(msg.key));
      pt.control.sendOk(msg.id);
      for (const st of srv.groups.values()) if (st.members.has(me)) pushSigners(srv, st);
      return;
    }
    case 'key.fetch': {
      const joining = groupOf(srv, msg.sgId);
      if (joining.pendingJoiners.has(me)) await joining.joinUpdate?.done;
      // Under the SG's lock: a join update queued before this fetch runs first, so a joiner never fetches
      // the key of an epoch from before its join (backward secrecy on join).
      const { st, k } = await withSg(srv, msg.sgId, async () => {
        const st = groupOf(srv, msg.sgId);
        if (!st.members.has(me)) fail(ErrorCode.NOT_MEMBER, 'sgId');
        const k = await srv.store.getCurrentKey(msg.sgId);
        if (!k) fail(ErrorCode.NOT_FOUND, 'sgId');
        return { st, k };
      });
      try {
        pt.control.send({
          t: 'key.deliver',
          id: msg.id,
          sgId: msg.sgId,
          epoch: k.epoch,
          key: k.key,
          suite: WIRE_SUITE[st.suite],
          reason: wireReason(k.reason),
          graceSec: 0,
          senderAnchors: anchors(srv, st.sgId, k.epoch),
          ...(st.sourceAuth ? { sourceAuth: true } : {}),
        });
      } finally {
        k.key.fill(0);
      }
      await srv.store.appendAudit({ actor: me, action: 'key.fetch', sgId: st.sgId, epoch: k.epoch });
      return;
    }
    default:
      fail(ErrorCode.UNEXPECTED_MESSAGE);
  }
}
