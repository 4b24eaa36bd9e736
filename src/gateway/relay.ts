/**
 * Messages destined to a Service Group: from one of its PNEs (checked by rule P3, pne-messages.ts), delivered to
 * the SG's other attached members of this PN and forwarded upstream; from the server, delivered to the SG's
 * attached members of this PN. The GW reads only the header: it holds the SG's Group Key for delivery and so
 * could open the body, but it never does (SECURITY.md "What each role is trusted with").
 */
import { type CpnsError, isCpnsError } from '../core/errors.js';
import { readHeader } from '../core/group/header.js';
import { codeOf } from '../protocol/control.js';
import { attachedTargets } from './decisions.js';
import { admitGroupMessage } from './pne-messages.js';
import { countDrop, type GatewayState, type PneConn } from './state.js';

/** A message destined to a Service Group, from one of our PNEs. */
export function fromPne(st: GatewayState, c: PneConn, frame: Buffer, payload: Buffer): void {
  try {
    const sgId = admitGroupMessage(st, c, payload);
    deliverLocal(st, frame, payload, c.id, sgId);
    if (!st.up?.isOpen || !st.registered) return; // upstream down: local delivery only
    st.up.send(frame);
  } catch (err) {
    if (!isCpnsError(err)) st.log.error({ err }, 'group message handling failed');
    countDrop(st, codeOf(err));
    c.control.sendError(codeOf(err), undefined, (err as CpnsError).field);
  }
}

/** Local fan-out to the SG's attached members of this PN, except the sender. */
export function deliverLocal(
  st: GatewayState,
  frame: Buffer,
  payload: Buffer,
  exclude: string | undefined,
  sgIdKnown?: string,
): void {
  let sgId = sgIdKnown;
  let sender = exclude;
  if (sgId === undefined) {
    try {
      readHeader(payload); // the header is checked once here, for a message from the server
      const ids = st.idsFromServer.of(payload);
      sgId = ids.sgId;
      sender = ids.sender;
    } catch (err) {
      countDrop(st, codeOf(err)); // from the server: a header this GW cannot read
      return;
    }
  }
  const e = st.keys.get(sgId);
  if (!e) return;
  for (const c of attachedTargets(e.targets, st.pnes, sender)) c.session.send(frame);
}
