/**
 * The one row shape of every role's authorization tables (docs/protocol.md "Authorization"): for each inbound
 * control message type, who may send it, what it may claim and how each claim is checked, the rule ids, and the
 * handler that does those checks. Each table is an object keyed by message type (one row per type); the tables
 * are data so that docs/protocol.md's tables are generated from them (test/protocol/authz-doc.test.ts).
 */
import type { ErrorCode } from '../core/errors.js';

/** One thing a message claims (a field, or what the message says), how the receiver checks it, the refusals. */
export interface Claim {
  /** What the sender claims, e.g. "`pneId`: PNE P may be behind me". */
  readonly claim: string;
  /** How the receiver checks it (what the handler actually does). */
  readonly check: string;
  /** The `error` codes a failed check answers with; empty when a failed check is ignored, not answered. */
  readonly refused: readonly ErrorCode[];
}

/** One row: `H` is the handler's type, `R` the table's rule ids. */
export interface AuthzRow<R extends string, H> {
  /** Who may send it. */
  readonly who: string;
  /** What it may claim; empty when it claims nothing beyond the sender's certificate identity. */
  readonly claims: readonly Claim[];
  /** The rule ids of docs/protocol.md it is checked against (at least one). */
  readonly rules: readonly R[];
  readonly handler: H;
}

/** The row for message type `t`, if the table has one (own keys only). */
export function rowOf<E>(table: { readonly [t: string]: E }, t: string): E | undefined {
  return Object.hasOwn(table, t) ? table[t] : undefined;
}
