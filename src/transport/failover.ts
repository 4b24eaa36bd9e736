/**
 * Where and when a ReconnectingClient tries next (docs/transport.md "Failover over a list of URLs"), as pure
 * functions of the rotation state, so the schedule is tested without sockets.
 *
 * - Round robin over the URLs, from a random start index, so a fleet given the same list spreads over the nodes.
 * - Backoff per full round, not per attempt: inside a round the next URL is tried at once (a dead node costs only
 *   its failed connect, never a backoff); once every URL has failed in a row, the client waits
 *   `backoffDelay(rounds)` before the next round. Each node thus sees at most one attempt per client per backoff
 *   period, the same load as with a single URL today, and with one URL the schedule is exactly the old one.
 * - A lost (established) session ends the round that succeeded: the next URL is tried after `backoffDelay(0)`
 *   (jittered), so the clients of a node that goes away do not all land on the next node at the same instant.
 */
import { type BackoffOptions, backoffDelay } from './backoff.js';
import { MAX_RECONNECT_URLS } from './limits.js';

export interface Rotation {
  /** Index (into the current URL list) of the next attempt. */
  readonly index: number;
  /** Attempts that failed in the current round. */
  readonly inRound: number;
  /** Full rounds that failed since the last established session: the backoff exponent of the next round end. */
  readonly rounds: number;
}

/**
 * Why the client moves on: its attempt at `index` failed (connect or establish), its established session was
 * lost, or the URL at `index` was removed from the list (a wrong peer: the caller removed it already, so the
 * URL after it now sits at `index`).
 */
export type RotationOutcome = 'failed' | 'lost' | 'removed';

/** The first attempt: a random index in [0, count). */
export function firstRotation(count: number, rand: () => number = Math.random): Rotation {
  const i = Math.floor(rand() * count);
  return { index: Math.min(Math.max(i, 0), count - 1), inRound: 0, rounds: 0 };
}

/** The next attempt and the delay before it. `count` is the number of URLs (after a removal: the new number). */
export function nextRotation(
  r: Rotation,
  count: number,
  outcome: RotationOutcome,
  backoff: BackoffOptions = {},
  rand: () => number = Math.random,
): { rotation: Rotation; delayMs: number } {
  if (outcome === 'lost') {
    return {
      rotation: { index: (r.index + 1) % count, inRound: 0, rounds: 1 },
      delayMs: backoffDelay(0, backoff, rand),
    };
  }
  const index = outcome === 'removed' ? r.index % count : (r.index + 1) % count;
  const inRound = outcome === 'removed' ? r.inRound : r.inRound + 1;
  if (inRound < count) return { rotation: { index, inRound, rounds: r.rounds }, delayMs: 0 };
  return {
    rotation: { index, inRound: 0, rounds: r.rounds + 1 },
    delayMs: backoffDelay(r.rounds, backoff, rand),
  };
}

/** After an established session: the same URL, a fresh round, the backoff back to its start. */
export function establishedRotation(index: number): Rotation {
  return { index, inRound: 0, rounds: 0 };
}

/** The URL list of a client: one URL or a non-empty list of at most MAX_RECONNECT_URLS, without duplicates. */
export function urlList(urls: string | readonly string[]): string[] {
  const list = typeof urls === 'string' ? [urls] : [...new Set(urls)];
  if (list.length === 0 || list.some((u) => typeof u !== 'string' || u === ''))
    throw new TypeError('a reconnecting client needs at least one URL');
  if (list.length > MAX_RECONNECT_URLS)
    throw new TypeError(`at most ${MAX_RECONNECT_URLS} URLs per reconnecting client`);
  return list;
}
