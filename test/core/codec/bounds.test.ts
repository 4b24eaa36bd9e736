import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { decodeMessage, encodeMessage } from '../../../src/core/codec/codec.js';
import { limits } from '../../../src/core/codec/limits.js';
import { MAX_LIST, type MessageOf, messageSchemas, messageTypes } from '../../../src/core/codec/messages.js';
import { MAX_KEY_BYTES } from '../../../src/core/codec/scan.js';
import { generatedDocs, worstCase } from './doc-tables.js';

const SG = '123e4567-e89b-12d3-a456-426614174000';
const PNE = 'urn:cpns:pne:123e4567-e89b-12d3-a456-426614174000';

describe('every legal message fits the default limits', () => {
  it.each(messageTypes)('%s: worst case within maxMessageBytes, maxItems, maxDepth, maxMapEntries', (t) => {
    const w = worstCase(messageSchemas[t]);
    expect(w.bytes).toBeLessThanOrEqual(limits.maxMessageBytes);
    expect(w.items).toBeLessThanOrEqual(limits.maxItems);
    expect(w.depth).toBeLessThanOrEqual(limits.maxDepth);
    expect(w.maxMapEntries).toBeLessThanOrEqual(limits.maxMapEntries);
    expect(w.longestKey).toBeLessThanOrEqual(MAX_KEY_BYTES);
  });

  it('a real maximal key.deliver encodes and decodes under the defaults', () => {
    const msg: MessageOf<'key.deliver'> = {
      v: 1,
      t: 'key.deliver',
      id: Number.MAX_SAFE_INTEGER,
      sgId: SG,
      epoch: 0xffffffff,
      key: new Uint8Array(32).fill(0xab),
      suite: 'chacha20-poly1305',
      reason: 'periodic',
      activateAt: Number.MAX_SAFE_INTEGER,
      activateIn: 0xffffffff,
      graceSec: 0xffffffff,
      previousEpoch: 0xfffffffe,
      senderAnchors: Array.from({ length: MAX_LIST }, (_, i) => ({
        sender: new Uint8Array(16).fill(i & 0xff),
        instance: new Uint8Array(8).fill(1),
        counter: Number.MAX_SAFE_INTEGER - i,
      })),
      targets: Array.from({ length: MAX_LIST }, () => PNE),
    };
    const frame = encodeMessage(msg);
    expect(frame.length).toBeLessThanOrEqual(worstCase(messageSchemas['key.deliver']).bytes);
    expect(decodeMessage(frame)).toStrictEqual(msg);
  });

  it('real maximal member lists encode and decode under the defaults', () => {
    const signers: MessageOf<'sg.signers'> = {
      v: 1,
      t: 'sg.signers',
      id: Number.MAX_SAFE_INTEGER,
      sgId: SG,
      signers: Array.from({ length: MAX_LIST }, (_, i) => ({
        pneId: PNE,
        key: new Uint8Array(32).fill(i & 0xff),
      })),
    };
    let frame = encodeMessage(signers);
    expect(frame.length).toBeLessThanOrEqual(worstCase(messageSchemas['sg.signers']).bytes);
    expect(decodeMessage(frame)).toStrictEqual(signers);
    const report: MessageOf<'key.delivery.report'> = {
      v: 1,
      t: 'key.delivery.report',
      id: Number.MAX_SAFE_INTEGER,
      sgId: SG,
      epoch: 0xffffffff,
      entries: Array.from({ length: MAX_LIST }, () => ({
        pneId: PNE,
        method: 'broadcast',
        ackedAt: Number.MAX_SAFE_INTEGER,
      })),
    };
    frame = encodeMessage(report);
    expect(frame.length).toBeLessThanOrEqual(worstCase(messageSchemas['key.delivery.report']).bytes);
    expect(decodeMessage(frame)).toStrictEqual(report);
  });
});

describe('docs/codec.md', () => {
  const path = new URL('../../../docs/codec.md', import.meta.url);
  const BEGIN =
    '<!-- BEGIN GENERATED: messages (UPDATE_DOCS=1 npx vitest run test/core/codec/bounds.test.ts) -->';
  const END = '<!-- END GENERATED: messages -->';

  it('message tables are generated from the schemas and up to date', () => {
    const doc = readFileSync(path, 'utf8');
    const start = doc.indexOf(BEGIN);
    const end = doc.indexOf(END);
    expect(start).toBeGreaterThan(-1);
    expect(end).toBeGreaterThan(start);
    const fresh = `${BEGIN}\n\n${generatedDocs()}\n${END}`;
    if (process.env.UPDATE_DOCS === '1') {
      writeFileSync(path, doc.slice(0, start) + fresh + doc.slice(end + END.length));
      return;
    }
    expect(doc.slice(start, end + END.length)).toBe(fresh);
  });

  it('documents every limit with its default', () => {
    const doc = readFileSync(path, 'utf8');
    for (const [name, value] of Object.entries(limits)) {
      expect(doc).toContain(`\`${name}\``);
      expect(doc).toContain(String(value));
    }
  });
});
