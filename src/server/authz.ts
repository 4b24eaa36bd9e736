/**
 * The shape of the server's authorization tables (gw-messages.ts, pne-messages.ts): one row per inbound control
 * message type, naming the docs/protocol.md "Authorization" rules it is checked against, who may send it, and
 * the handler that does those checks. Kept as data so that the docs can be generated from it.
 */
import type { MessageOf, MessageType } from '../core/codec/index.js';
import type { ServerState } from './state.js';

export interface MessageRule<R extends string, From, T extends MessageType> {
  /** The rule ids the message is checked against. */
  readonly rules: readonly R[];
  /** Who may send it. */
  readonly who: string;
  readonly handler: (srv: ServerState, from: From, msg: MessageOf<T>) => Promise<void>;
}

/** The row for message type `t`, if the table has one (own keys only). */
export function ruleOf<E>(table: { readonly [t: string]: E }, t: MessageType): E | undefined {
  return Object.hasOwn(table, t) ? table[t] : undefined;
}
