/**
 * `--media` (docs/cli.md "Broadcast"): the media a GW offers its PNEs, each optionally with the UDP multicast
 * group it broadcasts Group Key updates on (`wifi=239.255.77.1:47701`); a PNE names the media it listens on.
 * Broadcast delivery (GKEK, docs/broadcast.md) is on at a GW when at least one medium has a group.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { media as MEDIA, type Medium } from '../core/codec/index.js';
import type { BroadcastMediumConfig } from '../gateway/index.js';
import { UsageError } from './usage.js';

export interface MediaOption {
  readonly media: Medium[];
  readonly broadcast: BroadcastMediumConfig[];
}

/** 224.0.0.0/4 or ff00::/8: the only destinations a broadcast may go to (never a unicast host). */
export function isMulticast(addr: string): boolean {
  if (isIPv4(addr)) {
    const first = Number(addr.split('.')[0]);
    return first >= 224 && first <= 239;
  }
  return isIPv6(addr) && /^ff[0-9a-f]{2}:/i.test(addr);
}

function medium(name: string, flag: string): Medium {
  if (!(MEDIA as readonly string[]).includes(name))
    throw new UsageError(`${flag}: a medium is one of ${MEDIA.join(', ')}`);
  return name as Medium;
}

/** `name[=group:port],...`; at most one entry per medium. `allowGroups` false: names only (a PNE). */
export function parseMediaOption(text: string, flag: string, allowGroups: boolean): MediaOption {
  const out: Medium[] = [];
  const broadcast: BroadcastMediumConfig[] = [];
  for (const item of text.split(',').filter(Boolean)) {
    const eq = item.indexOf('=');
    const name = medium(eq < 0 ? item : item.slice(0, eq), flag);
    if (out.includes(name)) throw new UsageError(`${flag}: ${name} is given twice`);
    out.push(name);
    if (eq < 0) continue;
    if (!allowGroups) throw new UsageError(`${flag}: a PNE names media only (the GW tells it the groups)`);
    const where = item.slice(eq + 1);
    // The port is after the last colon, so an IPv6 group may be written bare or in brackets.
    const colon = where.lastIndexOf(':');
    const group = where.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
    const port = Number(where.slice(colon + 1));
    if (colon < 0 || !isMulticast(group))
      throw new UsageError(`${flag}: ${name}=<multicast group>:<port>, e.g. ${name}=239.255.77.1:47701`);
    if (!Number.isInteger(port) || port < 1 || port > 65535)
      throw new UsageError(`${flag}: the port of ${name} is a number 1-65535`);
    broadcast.push({ name, group, port });
  }
  return { media: out, broadcast };
}
