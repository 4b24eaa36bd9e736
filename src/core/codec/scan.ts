import { isUtf8 } from 'node:buffer';
import { CpnsError, ErrorCode } from '../errors.js';
import type { Limits } from './limits.js';

/**
 * Pre-decode well-formedness scanner. It walks the CBOR item headers of a frame without building any value,
 * so that every limit is enforced *before* cbor-x allocates anything for attacker-controlled input, and it
 * restricts input to the small CBOR profile CPNS control messages use:
 *
 * - definite lengths only (no indefinite-length items, no break codes);
 * - no tags at all (this also refuses cbor-x extensions such as records, tag 105, and structured clone);
 * - major type 7 only for `false`/`true` (no null, undefined, simple values or floats: no field needs them);
 * - integers within the IEEE-754 safe range, so cbor-x never yields a BigInt or a rounded number;
 * - text strings valid UTF-8; map keys are text strings of 1..32 ASCII letters/digits starting with a letter
 *   (all our field names are camelCase; this also excludes `__proto__`), and no key repeats within a map;
 * - every declared length fits in the remaining bytes; no bytes after the top-level item.
 *
 * Errors name the field path where the problem sits, using a map key only when it is one of our field names
 * (`names`); other keys are shown as `?` so that no attacker-chosen text reaches the error.
 */

/** Longest accepted map key, in bytes. Our longest field name is 13 characters. */
export const MAX_KEY_BYTES = 32;

export type ScanLimits = Pick<Limits, 'maxMessageBytes' | 'maxDepth' | 'maxItems' | 'maxMapEntries'>;

// Scratch stacks, reused across calls (the scan is synchronous and never re-entered) and grown on demand, so
// their size follows the input actually seen, never a (possibly huge) configured limit.
// Per depth d: remaining items, items started, map flag, current key, and where d's keys start on the key stack.
let remaining = new Float64Array(32);
let started = new Float64Array(32);
let isMap = new Uint8Array(32);
let keyStart = new Int32Array(32);
let keyLen = new Int32Array(32);
let keyBase = new Int32Array(32);
// Keys of the maps currently open (outer maps below inner ones), for duplicate checks.
let seenStart = new Int32Array(256);
let seenLen = new Int32Array(256);

function grow<A extends Float64Array | Int32Array | Uint8Array>(a: A, make: (n: number) => A): A {
  const b = make(a.length * 2);
  b.set(a);
  return b;
}

function ensureDepth(d: number): void {
  while (remaining.length <= d) {
    remaining = grow(remaining, (n) => new Float64Array(n));
    started = grow(started, (n) => new Float64Array(n));
    isMap = grow(isMap, (n) => new Uint8Array(n));
    keyStart = grow(keyStart, (n) => new Int32Array(n));
    keyLen = grow(keyLen, (n) => new Int32Array(n));
    keyBase = grow(keyBase, (n) => new Int32Array(n));
  }
}

function ensureKeys(n: number): void {
  while (seenStart.length <= n) {
    seenStart = grow(seenStart, (k) => new Int32Array(k));
    seenLen = grow(seenLen, (k) => new Int32Array(k));
  }
}

const TWO_32 = 0x1_0000_0000;
const NO_NAMES: ReadonlySet<string> = new Set();

function isKeyByte(c: number, first: boolean): boolean {
  const letter = (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
  return letter || (!first && c >= 0x30 && c <= 0x39);
}

function sameBytes(buf: Uint8Array, a: number, b: number, len: number): boolean {
  for (let i = 0; i < len; i++) if (buf[a + i] !== buf[b + i]) return false;
  return true;
}

/**
 * Throw CpnsError (MALFORMED or TOO_LARGE) unless `buf` holds exactly one CBOR item within the profile and limits.
 * Costs O(bytes) plus O(entries²·keyLength) per map, bounded by maxMapEntries and MAX_KEY_BYTES; scratch memory
 * grows with the nesting and the open maps' keys actually met, never with a configured limit.
 */
export function scanCbor(buf: Uint8Array, lim: ScanLimits, names: ReadonlySet<string> = NO_NAMES): void {
  const len = buf.length;
  if (len > lim.maxMessageBytes) throw new CpnsError(ErrorCode.TOO_LARGE, 'message exceeds maxMessageBytes');
  const maxDepth = lim.maxDepth;
  const maxEntries = lim.maxMapEntries;
  let keyTop = 0; // top of the key stack

  // Depth 0 is a virtual container holding the single top-level item.
  let depth = 0;
  remaining[0] = 1;
  started[0] = 0;
  isMap[0] = 0;
  let pos = 0;
  let items = 0;

  // A function declaration (not an arrow) so TypeScript's control flow treats calls as `never`.
  function err(code: ErrorCode, message: string, withKey = false): never {
    throw new CpnsError(code, message, pathAt(buf, depth, names, withKey));
  }

  for (;;) {
    while (depth > 0 && remaining[depth] === 0) {
      keyTop = keyBase[depth]!; // drop the keys of the map (if any) that just ended
      depth--;
    }
    if (remaining[depth] === 0) break; // depth 0 done
    remaining[depth]!--;
    const index = started[depth]!;
    started[depth] = index + 1;
    const readingKey = isMap[depth] === 1 && index % 2 === 0;

    if (++items > lim.maxItems) err(ErrorCode.TOO_LARGE, 'message has more items than maxItems');
    if (pos >= len) err(ErrorCode.MALFORMED, 'truncated CBOR item');
    const ib = buf[pos++]!;
    const major = ib >> 5;
    const ai = ib & 0x1f;

    // Argument (count, length or integer value). 8-byte arguments above 2^53 are caught per major type below.
    let arg: number;
    if (ai < 24) {
      arg = ai;
    } else if (ai <= 27) {
      const n = 1 << (ai - 24);
      if (len - pos < n) err(ErrorCode.MALFORMED, 'truncated CBOR item');
      if (n === 1) arg = buf[pos]!;
      else if (n === 2) arg = (buf[pos]! << 8) | buf[pos + 1]!;
      else if (n === 4)
        arg = ((buf[pos]! << 24) >>> 0) + ((buf[pos + 1]! << 16) | (buf[pos + 2]! << 8) | buf[pos + 3]!);
      else {
        const hi = ((buf[pos]! << 24) >>> 0) + ((buf[pos + 1]! << 16) | (buf[pos + 2]! << 8) | buf[pos + 3]!);
        const lo =
          ((buf[pos + 4]! << 24) >>> 0) + ((buf[pos + 5]! << 16) | (buf[pos + 6]! << 8) | buf[pos + 7]!);
        // Exact while hi < 2^21 (i.e. value < 2^53); larger values only need to compare as "too big".
        arg = hi * TWO_32 + lo;
      }
      pos += n;
    } else if (ai === 31) {
      if (major === 7) err(ErrorCode.MALFORMED, 'unexpected break code');
      err(ErrorCode.MALFORMED, 'indefinite-length items are not allowed');
    } else {
      err(ErrorCode.MALFORMED, 'reserved CBOR additional information');
    }

    if (readingKey && major !== 3) err(ErrorCode.MALFORMED, 'map keys must be text strings');

    switch (major) {
      case 0:
        if (arg > Number.MAX_SAFE_INTEGER) err(ErrorCode.MALFORMED, 'integer outside the safe range');
        break;
      case 1:
        // Value is -1 - arg; it must stay >= -(2^53 - 1).
        if (arg > Number.MAX_SAFE_INTEGER - 1) err(ErrorCode.MALFORMED, 'integer outside the safe range');
        break;
      case 2:
        if (arg > len - pos) err(ErrorCode.MALFORMED, 'truncated CBOR item');
        pos += arg;
        break;
      case 3: {
        if (arg > len - pos) err(ErrorCode.MALFORMED, 'truncated CBOR item');
        if (readingKey) {
          if (arg === 0 || arg > MAX_KEY_BYTES) err(ErrorCode.MALFORMED, 'invalid map key');
          for (let i = 0; i < arg; i++) {
            if (!isKeyByte(buf[pos + i]!, i === 0)) err(ErrorCode.MALFORMED, 'invalid map key');
          }
          for (let j = keyBase[depth]!; j < keyTop; j++) {
            if (seenLen[j] === arg && sameBytes(buf, seenStart[j]!, pos, arg)) {
              keyStart[depth] = pos;
              keyLen[depth] = arg;
              // Name the repeated key (if it is one of ours): the error is about that field.
              err(ErrorCode.MALFORMED, 'duplicate map key', true);
            }
          }
          ensureKeys(keyTop);
          seenStart[keyTop] = pos;
          seenLen[keyTop] = arg;
          keyTop++;
          keyStart[depth] = pos;
          keyLen[depth] = arg;
        } else if (arg > 0 && !isUtf8(buf.subarray(pos, pos + arg))) {
          err(ErrorCode.MALFORMED, 'text string is not valid UTF-8');
        }
        pos += arg;
        break;
      }
      case 4:
      case 5: {
        const map = major === 5;
        if (map && arg > maxEntries) err(ErrorCode.TOO_LARGE, 'map has more entries than maxMapEntries');
        const count = map ? arg * 2 : arg;
        if (count > lim.maxItems - items) err(ErrorCode.TOO_LARGE, 'message has more items than maxItems');
        // Every item takes at least one byte: a count beyond the remaining bytes is a truncated frame.
        if (count > len - pos) err(ErrorCode.MALFORMED, 'truncated CBOR item');
        if (depth + 1 > maxDepth) err(ErrorCode.TOO_LARGE, 'nesting deeper than maxDepth');
        depth++;
        ensureDepth(depth);
        keyBase[depth] = keyTop;
        remaining[depth] = count;
        started[depth] = 0;
        isMap[depth] = map ? 1 : 0;
        break;
      }
      case 6:
        err(ErrorCode.MALFORMED, 'CBOR tags are not allowed');
        break;
      default:
        // major 7: only false (20) and true (21) belong to the profile.
        if (ai !== 20 && ai !== 21) err(ErrorCode.MALFORMED, 'CBOR simple values and floats are not allowed');
    }
  }
  if (pos !== len) throw new CpnsError(ErrorCode.MALFORMED, 'trailing bytes after the CBOR item');
}

/**
 * Field path of the item being read at `depth` (built only on the error path, so it may allocate). While a map
 * key is being read the path stops at the map, unless `withKey` (duplicates: the error is about that key).
 */
function pathAt(
  buf: Uint8Array,
  depth: number,
  names: ReadonlySet<string>,
  withKey: boolean,
): string | undefined {
  let path = '';
  for (let d = 1; d <= depth; d++) {
    const index = started[d]! - 1;
    if (isMap[d] === 1) {
      if (index % 2 === 0 && !(withKey && d === depth)) break;
      const key = Buffer.from(buf.buffer, buf.byteOffset + keyStart[d]!, keyLen[d]!).toString('latin1');
      const seg = names.has(key) ? key : '?';
      path = path === '' ? seg : `${path}.${seg}`;
    } else {
      path = `${path}[${index}]`;
    }
  }
  return path === '' ? undefined : path;
}
