import type { Suite } from '../crypto/aead.js';
import { hkdfSha256 } from '../crypto/hkdf.js';
import { GROUP_MESSAGE_VERSION } from './header.js';

/**
 * Per-sender message key schedule (docs/group-messages.md "Key schedule"). Each (Service Group, epoch, sender,
 * sender instance) gets its own AEAD key and static IV, derived from the Group Key with HKDF-SHA256:
 *
 *   okm  = HKDF(IKM = GK, salt = "CPNS group message v1",
 *               info = "cpns sg msg" || version || suite || epoch(4) || sgId(16) || senderId(16) || instance(8), L = 44)
 *   key  = okm[0..32),  iv = okm[32..44)
 *   nonce = iv XOR (0^4 || counter(8))            (the TLS 1.3 construction, RFC 8446 §5.3)
 *
 * Binding the sender and a fresh random instance into the key means two senders — or one sender restarted
 * without persisted state — never share a (key, nonce) pair, so no counter needs to survive a restart.
 */
const SALT = Buffer.from('CPNS group message v1', 'latin1');
const LABEL = Buffer.from('cpns sg msg', 'latin1');

export interface MessageKey {
  readonly key: Buffer;
  readonly iv: Buffer;
}

export function deriveMessageKey(
  groupKey: Uint8Array,
  suite: Suite,
  epoch: number,
  sgId: Uint8Array,
  senderId: Uint8Array,
  instance: Uint8Array,
): MessageKey {
  const info = Buffer.allocUnsafe(LABEL.length + 2 + 4 + 16 + 16 + 8);
  let o = LABEL.copy(info, 0);
  info[o++] = GROUP_MESSAGE_VERSION;
  info[o++] = suite;
  o = info.writeUInt32BE(epoch, o);
  info.set(sgId, o);
  info.set(senderId, o + 16);
  info.set(instance, o + 32);
  const okm = hkdfSha256(groupKey, SALT, info, 44);
  return { key: okm.subarray(0, 32), iv: okm.subarray(32, 44) };
}

/** nonce = iv XOR (0^4 || counter as uint64 BE). Writes into `out` (12 bytes) to avoid allocation. */
export function nonceFor(iv: Buffer, counter: number, out: Buffer): Buffer {
  // Byte by byte (it runs for every message on both sides): no copy call, no bounds-checked reads and writes.
  const hi = Math.floor(counter / 2 ** 32);
  const lo = counter >>> 0;
  out[0] = iv[0]!;
  out[1] = iv[1]!;
  out[2] = iv[2]!;
  out[3] = iv[3]!;
  out[4] = iv[4]! ^ (hi >>> 24);
  out[5] = iv[5]! ^ ((hi >>> 16) & 0xff);
  out[6] = iv[6]! ^ ((hi >>> 8) & 0xff);
  out[7] = iv[7]! ^ (hi & 0xff);
  out[8] = iv[8]! ^ (lo >>> 24);
  out[9] = iv[9]! ^ ((lo >>> 16) & 0xff);
  out[10] = iv[10]! ^ ((lo >>> 8) & 0xff);
  out[11] = iv[11]! ^ (lo & 0xff);
  return out;
}
