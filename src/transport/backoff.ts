/**
 * Retry delays of the reconnecting clients (docs/transport.md "Secure sessions"): exponential, capped, with
 * jitter. Shared by ReconnectingClient and the roles' own retry loops (the PNE tunnel, the CLI daemons), so every
 * retry loop of a fleet spreads out the same way.
 */
import {
  BACKOFF_MAX_EXPONENT,
  DEFAULT_BACKOFF_FACTOR,
  DEFAULT_BACKOFF_INITIAL_MS,
  DEFAULT_BACKOFF_JITTER,
  DEFAULT_BACKOFF_MAX_MS,
} from './limits.js';

export interface BackoffOptions {
  /** First retry delay (ms). Default 250. */
  initialMs?: number;
  /** Ceiling (ms). Default 30 000. */
  maxMs?: number;
  /** Growth per failed attempt. Default 2. */
  factor?: number;
  /** Fraction of the delay that is randomised (0..1). Default 0.5: delay in [d/2, d]. */
  jitter?: number;
}

/** Delay before retry number `attempt` (0-based): exponential, capped, with jitter so a fleet does not stampede. */
export function backoffDelay(
  attempt: number,
  o: BackoffOptions = {},
  rand: () => number = Math.random,
): number {
  const initial = o.initialMs ?? DEFAULT_BACKOFF_INITIAL_MS;
  const max = o.maxMs ?? DEFAULT_BACKOFF_MAX_MS;
  const factor = o.factor ?? DEFAULT_BACKOFF_FACTOR;
  const jitter = Math.min(1, Math.max(0, o.jitter ?? DEFAULT_BACKOFF_JITTER));
  const d = Math.min(max, initial * factor ** Math.min(attempt, BACKOFF_MAX_EXPONENT));
  return Math.round(d * (1 - jitter * rand()));
}
