import { type Limits, limits } from '../../../src/core/codec/limits.js';
import {
  type MessageType,
  messageInfo,
  messageSchemas,
  messageTypes,
} from '../../../src/core/codec/messages.js';
import type { Bound, Field, Schema } from '../../../src/core/codec/schema.js';

/**
 * Static worst cases derived from the schemas, and the generated message tables of docs/codec.md.
 * (Test-side tooling: run `UPDATE_DOCS=1 npx vitest run test/core/codec/bounds.test.ts` to refresh the docs.)
 */

function unwrap(f: Field): Schema<unknown> {
  return 'optional' in f ? f.schema : f;
}

export function boundValue(b: Bound, lim: Limits = limits): number {
  return typeof b === 'number' ? b : lim[b];
}

/** Size of a CBOR head with argument n (shortest form). */
export function headSize(n: number): number {
  return n < 24 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : n < 0x1_0000_0000 ? 5 : 9;
}

function textSize(s: string): number {
  const n = Buffer.byteLength(s, 'utf8');
  return headSize(n) + n;
}

export interface Worst {
  bytes: number;
  items: number;
  depth: number;
  maxMapEntries: number;
  longestKey: number;
}

/** Upper bounds of the encoded size, item count, depth and map width of any value valid for `schema`. */
export function worstCase(schema: Schema<unknown>, lim: Limits = limits): Worst {
  const info = schema.info;
  const leaf = (bytes: number): Worst => ({ bytes, items: 1, depth: 0, maxMapEntries: 0, longestKey: 0 });
  switch (info.kind) {
    case 'str':
    case 'bytes': {
      const max = boundValue(info.max, lim);
      return leaf(headSize(max) + max);
    }
    case 'uint':
      return leaf(headSize(info.max));
    case 'bool':
      return leaf(1);
    case 'enum':
      return leaf(Math.max(...info.values.map(textSize)));
    case 'literal':
      return leaf(
        typeof info.value === 'string'
          ? textSize(info.value)
          : typeof info.value === 'number'
            ? headSize(info.value)
            : 1,
      );
    case 'array': {
      const max = boundValue(info.max, lim);
      const item = worstCase(info.item, lim);
      return {
        bytes: headSize(max) + max * item.bytes,
        items: 1 + max * item.items,
        depth: 1 + item.depth,
        maxMapEntries: item.maxMapEntries,
        longestKey: item.longestKey,
      };
    }
    case 'object': {
      const entries = Object.entries(info.shape);
      const w: Worst = {
        bytes: headSize(entries.length),
        items: 1,
        depth: 1,
        maxMapEntries: entries.length,
        longestKey: 0,
      };
      for (const [k, f] of entries) {
        const c = worstCase(unwrap(f), lim);
        w.bytes += textSize(k) + c.bytes;
        w.items += 1 + c.items;
        w.depth = Math.max(w.depth, 1 + c.depth);
        w.maxMapEntries = Math.max(w.maxMapEntries, c.maxMapEntries);
        w.longestKey = Math.max(w.longestKey, k.length, c.longestKey);
      }
      return w;
    }
  }
}

function fmtNum(n: number): string {
  if (n === Number.MAX_SAFE_INTEGER) return '2^53−1';
  if (n === 0xffff_ffff) return '2^32−1';
  return String(n);
}

function fmtBound(b: Bound): string {
  return typeof b === 'number' ? String(b) : `${limits[b]} (\`${b}\`)`;
}

function describe(schema: Schema<unknown>): { type: string; bound: string } {
  const info = schema.info;
  switch (info.kind) {
    case 'str': {
      const type = info.format === undefined ? 'text' : `text (${info.format})`;
      const bound = info.min === info.max ? `${info.min} B` : `${info.min}..${fmtBound(info.max)} B`;
      return { type, bound };
    }
    case 'bytes':
      return {
        type: 'bytes',
        bound: info.min === info.max ? `${info.min} B` : `${info.min}..${fmtBound(info.max)} B`,
      };
    case 'uint':
      return { type: 'uint', bound: `${fmtNum(info.min)}..${fmtNum(info.max)}` };
    case 'bool':
      return { type: 'bool', bound: '' };
    case 'enum':
      return { type: 'enum', bound: info.values.map((v) => `\`${v}\``).join(', ') };
    case 'literal':
      return { type: 'literal', bound: `\`${String(info.value)}\`` };
    case 'array': {
      const item = describe(info.item);
      const itemType = info.item.info.kind === 'object' ? 'map' : item.type;
      const itemBound = info.item.info.kind === 'object' || item.bound === '' ? '' : `; each ${item.bound}`;
      return { type: `array of ${itemType}`, bound: `${info.min}..${fmtBound(info.max)} items${itemBound}` };
    }
    case 'object':
      return { type: 'map', bound: '' };
  }
}

function rows(schema: Schema<unknown>, prefix: string, out: string[]): void {
  const info = schema.info;
  if (info.kind !== 'object') return;
  for (const [k, f] of Object.entries(info.shape)) {
    if (prefix === '' && (k === 'v' || k === 't' || k === 'id')) continue; // envelope, documented once
    const inner = unwrap(f);
    const d = describe(inner);
    const name = prefix + k;
    out.push(`| \`${name}\` | ${'optional' in f ? 'no' : 'yes'} | ${d.type} | ${d.bound} |`);
    if (inner.info.kind === 'object') rows(inner, `${name}.`, out);
    if (inner.info.kind === 'array' && inner.info.item.info.kind === 'object')
      rows(inner.info.item, `${name}[].`, out);
  }
}

export function messageTable(t: MessageType): string {
  const out: string[] = [];
  rows(messageSchemas[t], '', out);
  const w = worstCase(messageSchemas[t]);
  const head = [
    `### \`${t}\``,
    '',
    `${messageInfo[t].doc} Direction: ${messageInfo[t].dir}. Worst-case frame: ${w.bytes} B.`,
    '',
  ];
  if (out.length === 0) return [...head, 'No body fields.', ''].join('\n');
  return [...head, '| field | required | type | bound |', '|---|---|---|---|', ...out, ''].join('\n');
}

export function generatedDocs(): string {
  const summary = [
    '| `t` | direction | purpose |',
    '|---|---|---|',
    ...messageTypes.map((t) => `| \`${t}\` | ${messageInfo[t].dir} | ${messageInfo[t].doc} |`),
    '',
  ].join('\n');
  return `${summary}\n${messageTypes.map(messageTable).join('\n')}`;
}
