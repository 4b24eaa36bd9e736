import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadOrCreateMasterKey } from '../../src/core/crypto/masterkey.js';
import { PnGateway } from '../../src/gateway/index.js';
import { type Credentials, PneClient } from '../../src/pne/index.js';
import type { CpnsServer } from '../../src/server/index.js';
import { openSqliteStore } from '../../src/store/sqlite/index.js';
import { BACKOFF, enrollPne, inbox, startPne, startServer, tempDir, until } from './helpers.js';

let tmp: ReturnType<typeof tempDir>;
let server: CpnsServer;
let gw: PnGateway;
let gwCreds: Credentials;
let a: PneClient;
let aCreds: Credentials;
let b: PneClient;
let sgId: string;
let port: number;

beforeAll(async () => {
  tmp = tempDir();
  server = await startServer(tmp.dir);
  port = Number(new URL(server.url).port);
  gwCreds = await PnGateway.enroll({
    enrollUrl: server.enrollUrl,
    caPem: server.caPem,
    token: await server.admin.createToken('gw'),
  });
  gw = await PnGateway.start({
    serverUrl: server.url,
    credentials: gwCreds,
    heartbeat: false,
    reconnect: BACKOFF,
  });
  aCreds = await enrollPne(server, gw);
  [a, b] = await Promise.all([startPne(server, gw, aCreds), startPne(server, gw)]);
  sgId = (await a.createGroup({ name: 'persist', joinPolicy: 'open' })).sgId;
  await b.joinGroup(sgId);
  // b's join updated the key (update on join): epoch 2 at both.
  await until(() => a.currentEpoch(sgId) === 2 && b.currentEpoch(sgId) === 2);
});

afterAll(async () => {
  await Promise.all([a?.close(), b?.close()]);
  await gw?.close();
  await server?.close();
  tmp.cleanup();
});

describe('server restart', () => {
  it('graceful restart keeps CA, SGs, members, epochs, inventory and revocations; GW and PNEs reconnect', async () => {
    const revokedCreds = await enrollPne(server, gw);
    await server.admin.revoke(revokedCreds.identity);
    const caPem = server.caPem;
    const groups = await server.admin.listGroups();
    const got = inbox(b);
    a.send(sgId, 'before');
    await until(() => got.length === 1);
    await server.close();
    server = await startServer(tmp.dir, { port });
    expect(server.caPem).toBe(caPem);
    expect(await server.admin.listGroups()).toEqual(groups);
    expect(server.currentEpoch(sgId)).toBe(2);
    expect(await server.store.isRevoked(revokedCreds.identity)).toBe(true);
    // GW re-registers; PNEs reopen their tunnels; the PN inventory is back online.
    await until(async () => (await server.admin.listPns())[0]?.online === true, 8000, 'GW back');
    await until(
      async () => (await server.admin.listPns())[0]!.pnes.filter((p) => p.online).length === 2,
      8000,
      'PNEs back',
    );
    await until(() => a.connected && b.connected, 8000, 'tunnels back');
    a.send(sgId, 'after');
    await until(() => got.some((m) => m.plaintext.toString() === 'after'), 5000, 'message after restart');
    // A revoked identity stays refused.
    await expect(
      PneClient.connect({ gwUrl: gw.url, credentials: revokedCreds, heartbeat: false, reconnect: false }),
    ).rejects.toBeDefined();
    // Tunnel requests work again.
    await expect(b.fetchKey(sgId)).resolves.toBe(2);
  });

  it('a PNE that was away catches up to the current epoch, skipping intermediates', async () => {
    const creds = await enrollPne(server, gw);
    let c = await PneClient.connect({
      gwUrl: gw.url,
      credentials: creds,
      heartbeat: false,
      reconnect: false,
    });
    const before = server.currentEpoch(sgId)!;
    await c.joinGroup(sgId);
    // Its join updates the key (update on join); it holds the new epoch.
    await until(() => c.currentEpoch(sgId) === before + 1, 5000, 'join epoch');
    const e0 = server.currentEpoch(sgId)!;
    await c.close();
    await server.admin.rekey(sgId);
    await server.admin.rekey(sgId);
    c = await PneClient.connect({ gwUrl: gw.url, credentials: creds, heartbeat: false, reconnect: false });
    await until(() => c.currentEpoch(sgId) === e0 + 2, 5000, 'catch-up');
    const got = inbox(c);
    a.send(sgId, 'caught up');
    await until(() => got.some((m) => m.plaintext.toString() === 'caught up'));
    await c.close();
  });

  it('a GW that was away catches up on reconnect', async () => {
    await gw.close();
    await Promise.all([a.close(), b.close()]);
    const e0 = server.currentEpoch(sgId)!;
    await server.admin.rekey(sgId);
    gw = await PnGateway.start({
      serverUrl: server.url,
      credentials: gwCreds,
      heartbeat: false,
      reconnect: BACKOFF,
      port: Number(new URL(gw.url).port),
    });
    a = await PneClient.connect({ gwUrl: gw.url, credentials: aCreds, heartbeat: false, reconnect: BACKOFF });
    // The member PNE reattaches: GW and PNE get the current epoch only (catch-up), nothing is replayed.
    const epochs: number[] = [];
    a.on('key', (k: { epoch: number }) => epochs.push(k.epoch));
    await until(() => a.currentEpoch(sgId) === e0 + 1, 5000, 'PNE catch-up');
    expect(gw.keyEpoch(sgId)).toBe(e0 + 1);
    expect(epochs.every((e) => e === e0 + 1)).toBe(true);
  });

  it('an unclean restart (relay marks not flushed) rotates every SG key once', async () => {
    const before = server.currentEpoch(sgId)!;
    await server.close();
    // Simulate a crash: remove the clean-shutdown marker.
    const store = await openSqliteStore({
      path: join(tmp.dir, 'cpns.db'),
      masterKey: loadOrCreateMasterKey({ dataDir: tmp.dir }).key,
    });
    await store.deleteSecret('relay.clean-shutdown');
    await store.close();
    server = await startServer(tmp.dir, { port });
    expect(server.currentEpoch(sgId)).toBe(before + 1);
    await until(() => a.currentEpoch(sgId) === before + 1, 8000, 'restart rekey delivered');
    const audit = await server.store.listAudit({ sgId, action: 'key.update' });
    expect(audit.entries.at(-1)!.reason).toBe('restart');
    expect(await server.metrics.text()).toMatch(/^cpns_key_updates_total\{reason="restart"\} 1$/m);
  });
});
