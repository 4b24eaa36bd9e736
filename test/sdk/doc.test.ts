/**
 * docs/sdk.md includes its complete example verbatim: the code block after the `<!-- example: <path> ... -->`
 * marker is that file, byte for byte, so the guide and the program the package test runs cannot drift apart.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const repoFile = (p: string) => readFileSync(new URL(`../../${p}`, import.meta.url), 'utf8');

describe('docs/sdk.md', () => {
  it('includes each example it names verbatim', () => {
    const doc = repoFile('docs/sdk.md');
    const blocks = [
      ...doc.matchAll(/<!-- example: (\S+)[^>]*-->\n```js\n([\s\S]*?)```\n<!-- \/example -->/g),
    ];
    expect(blocks.map((b) => b[1])).toEqual(['examples/device.mjs']);
    for (const [, path, code] of blocks) expect(code, path).toBe(repoFile(path!));
  });

  it('documents every event the PNE SDK emits', () => {
    const doc = repoFile('docs/sdk.md');
    const sources = ['broadcast', 'connection', 'gw-messages', 'keys', 'messages', 'tunnel'].map((f) =>
      repoFile(`src/pne/${f}.ts`),
    );
    const events = new Set(
      sources.flatMap((s) => [...s.matchAll(/events\.emit\('([a-z-]+)'/g)].map((m) => m[1])),
    );
    expect(events.size).toBeGreaterThan(10);
    for (const e of events) expect(doc, e).toContain(`| \`${e}\` |`);
  });
});
