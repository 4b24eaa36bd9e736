import { CpnsError, ErrorCode } from '../errors.js';

/**
 * Default decoder limits. Every one bounds work or memory *before* anything is allocated for the input;
 * exceeding one is a TOO_LARGE error.
 *
 * maxMessageBytes is 512 KiB rather than 64 KiB because the frame must carry the largest legal message:
 * a `key.deliver` with 4096 sender anchors and 4096 targets (~455 KB). A test checks that every message type's
 * worst-case encoding fits these defaults.
 */
export const limits = Object.freeze({
  /** Whole CBOR frame, in bytes. */
  maxMessageBytes: 512 * 1024,
  /** Nesting of arrays/maps; the envelope map is depth 1. */
  maxDepth: 16,
  /** Total CBOR data items in one frame (map keys count as items). */
  maxItems: 65_536,
  /** Entries of any one map; the widest message map (key.deliver with its envelope) has 16. */
  maxMapEntries: 32,
});

export type Limits = { readonly [K in keyof typeof limits]: number };
export type LimitName = keyof Limits;

/** Options of encodeMessage/decodeMessage: any subset of the limits. */
export type CodecOptions = Partial<Limits>;

const LIMIT_NAMES = Object.keys(limits) as LimitName[];

/** Merge caller overrides onto the defaults. Overrides come from local config, so bad ones are INVALID_ARGUMENT. */
export function resolveLimits(opts: CodecOptions | undefined): Limits {
  if (opts === undefined) return limits;
  const out: Record<LimitName, number> = { ...limits };
  for (const name of LIMIT_NAMES) {
    const v = opts[name];
    if (v === undefined) continue;
    // 2^31-1 keeps every count comfortably inside the scanner's scratch arrays.
    if (!Number.isSafeInteger(v) || v < 1 || v > 0x7fffffff) {
      throw new CpnsError(ErrorCode.INVALID_ARGUMENT, 'codec limit must be a positive integer', name);
    }
    out[name] = v;
  }
  return out;
}
