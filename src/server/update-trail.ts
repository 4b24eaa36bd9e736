/**
 * The trail of a key update (docs/operator.md "Following a key update"): every key update carries an `updateId`,
 * the id of what caused it — the admin request (its request id), else a fresh one at the timer, the leave or the
 * revocation that rekeys. The id goes into the server's log lines of the update, its audit entry, the 'key.update'
 * change event (SSE), the key.deliver to each GW (which logs its delivery with it) and the cluster event.
 *
 * The cause's id is carried through the async work it starts with AsyncLocalStorage, so that the many paths from
 * a request to rekeyLocked (revoke → every SG of the identity, add member → join update...) need no extra
 * parameter.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';

const cause = new AsyncLocalStorage<string>();

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Runs `f` (and everything it starts) as caused by `id` (a lowercase UUID; anything else gets a fresh one). */
export function withCause<T>(id: string, f: () => T): T {
  return cause.run(UUID_RE.test(id) ? id : randomUUID(), f);
}

/** The id of the current cause, or a fresh one (a key update without a traced cause: the timer, start-up). */
export function updateIdNow(): string {
  return cause.getStore() ?? randomUUID();
}
