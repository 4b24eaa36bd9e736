/**
 * The server's authorization tables (gw-messages.ts, pne-messages.ts) in the row shape shared by every role
 * (src/protocol/authz.ts): one row per inbound control message type, with the docs/protocol.md "Authorization"
 * rules it is checked against, who may send it, what it may claim and how, and the handler that does the checks.
 */
import type { MessageOf, MessageType } from '../core/codec/index.js';
import type { AuthzRow } from '../protocol/authz.js';
import type { ServerState } from './state.js';

export type { AuthzRow, Claim } from '../protocol/authz.js';
export { rowOf as ruleOf } from '../protocol/authz.js';

export type MessageRule<R extends string, From, T extends MessageType> = AuthzRow<
  R,
  (srv: ServerState, from: From, msg: MessageOf<T>) => Promise<void>
>;
