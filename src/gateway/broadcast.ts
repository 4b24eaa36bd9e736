/**
 * Broadcast Group Key delivery set-up (docs/broadcast.md): the GW's broadcast state in `dataDir` (Subset-Difference
 * tree, leaf assignments, broadcast-signing key, encrypted at rest) and one UDP multicast medium per configured
 * medium. Off without `dataDir` or without media.
 */

import { uuidOf, uuidToBytes } from '../protocol/control.js';
import { DEFAULT_POLICY, GatewayBroadcaster, GatewayBroadcastState } from '../protocol/index.js';
import { BroadcastMedium } from '../transport/udp.js';
import { GATEWAY_DEFAULTS } from './defaults.js';
import type { GatewayOptions } from './types.js';

export async function openBroadcast(
  opts: GatewayOptions,
): Promise<{ broadcaster: GatewayBroadcaster | undefined; media: BroadcastMedium[] }> {
  const cfg = opts.broadcastMedia ?? [];
  if (opts.dataDir === undefined || cfg.length === 0) return { broadcaster: undefined, media: [] };
  const state = GatewayBroadcastState.open(
    opts.dataDir,
    uuidToBytes(uuidOf(opts.credentials.identity)),
    opts.broadcastCapacity ?? GATEWAY_DEFAULTS.broadcastCapacity,
  );
  const media: BroadcastMedium[] = [];
  try {
    for (const m of cfg) {
      media.push(
        await BroadcastMedium.open({
          name: m.name,
          group: m.group,
          port: m.port,
          listen: false,
          ...(opts.broadcastInterface ? { interfaceAddress: opts.broadcastInterface } : {}),
        }),
      );
    }
  } catch (e) {
    for (const m of media) m.close();
    throw e;
  }
  const broadcaster = new GatewayBroadcaster({
    state,
    media,
    policy: opts.deliveryPolicy ?? DEFAULT_POLICY,
    ...(opts.maxSpentLeaves !== undefined ? { maxSpentLeaves: opts.maxSpentLeaves } : {}),
  });
  return { broadcaster, media };
}
