import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isCpnsError } from '../../src/core/errors.js';
import type { PnGateway } from '../../src/gateway/index.js';
import type { PneClient } from '../../src/pne/index.js';
import type { CpnsServer } from '../../src/server/index.js';
import { startGateway, startPne, startServer, tempDir, until } from '../integration/helpers.js';

let tmp: ReturnType<typeof tempDir>;
let server: CpnsServer;
let gw: PnGateway;
let a: PneClient;
let b: PneClient;

beforeAll(async () => {
  tmp = tempDir();
  server = await startServer(tmp.dir);
  gw = await startGateway(server);
  [a, b] = await Promise.all([startPne(server, gw), startPne(server, gw)]);
});
afterAll(async () => {
  await Promise.all([a?.close(), b?.close()]);
  await gw?.close();
  await server?.close();
  tmp.cleanup();
});

describe('PNE SDK', () => {
  it('send without a Group Key fails locally with UNKNOWN_GROUP', () => {
    expect(() => a.send('00000000-0000-4000-8000-000000000000', 'x')).toThrow(
      expect.objectContaining({ code: 'UNKNOWN_GROUP' }),
    );
  });

  it('waitForKey resolves with the installed epoch; for a non-member it rejects NOT_MEMBER', async () => {
    const { sgId } = await a.createGroup({ name: 'w', joinPolicy: 'open', suite: 'chacha20-poly1305' });
    expect(await a.waitForKey(sgId)).toBe(1);
    await expect(b.waitForKey(sgId, 1, 50)).rejects.toSatisfy((e) => isCpnsError(e, 'NOT_MEMBER'));
  });

  it('open() of a tampered message fails with BAD_MAC and emits nothing', async () => {
    const { sgId } = await a.createGroup({ name: 't', joinPolicy: 'open' });
    await b.joinGroup(sgId);
    // Both hold the same epoch first (the join may update the key): else b could refuse the epoch, not the MAC.
    await until(() => b.currentEpoch(sgId) !== undefined && a.currentEpoch(sgId) === b.currentEpoch(sgId));
    const msg = a.send(sgId, 'tamper me');
    const bad = Buffer.from(msg);
    bad[bad.length - 1]! ^= 1;
    expect(() => b.open(bad)).toThrow(expect.objectContaining({ code: 'BAD_MAC' }));
  });
});
