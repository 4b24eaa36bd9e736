/**
 * When a key distributed ahead of its activation (a periodic update, docs/group-messages.md "Staged keys")
 * becomes current, in the receiver's own clock. One rule for every role (docs/group-messages.md, staged keys):
 *
 * - the relative time `activateIn` (seconds from receipt) wins when present, because devices need not have a
 *   synchronised clock; `activateIn <= 0` means "now";
 * - the absolute `activateAt` (ms since the epoch, the sender's clock) applies only when no relative one is given;
 * - the result is `undefined` when the key is current at once (no activation time, or a time not after `now`).
 */
export function activationTime(
  activateIn: number | undefined,
  activateAt: number | undefined,
  now: number,
): number | undefined {
  const at = activateIn !== undefined ? now + Math.max(0, activateIn) * 1000 : activateAt;
  return at !== undefined && at > now ? at : undefined;
}
