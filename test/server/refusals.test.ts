import { randomUUID } from 'node:crypto';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isCpnsError } from '../../src/core/errors.js';
import { PnGateway } from '../../src/gateway/index.js';
import { PneClient } from '../../src/pne/index.js';
import type { CpnsServer } from '../../src/server/index.js';
import { createCa, formatIdentity, generateKeyAndCsr, issueFromCsr, loadCa } from '../../src/transport/ca.js';
import { connectSession } from '../../src/transport/connect-session.js';
import { isTransportError } from '../../src/transport/errors.js';
import {
  BACKOFF,
  sleep,
  startGateway,
  startPne,
  startServer,
  tempDir,
  until,
} from '../integration/helpers.js';

let tmp: ReturnType<typeof tempDir>;
let server: CpnsServer;
let gw: PnGateway;

beforeAll(async () => {
  tmp = tempDir();
  server = await startServer(tmp.dir);
  gw = await startGateway(server);
});
afterAll(async () => {
  await gw?.close();
  await server?.close();
  tmp.cleanup();
});

async function foreign(role: 'gw' | 'pne') {
  const other = await loadCa(await createCa('Other CA'));
  const identity = formatIdentity(role, randomUUID());
  const { keyPem, csrPem } = await generateKeyAndCsr();
  return { identity, keyPem, certPem: await issueFromCsr(other, csrPem, identity, 30), caPem: server.caPem };
}

describe('refused', () => {
  it('a PNE with a certificate from another CA is refused by the GW', async () => {
    await expect(
      PneClient.connect({
        gwUrl: gw.url,
        credentials: await foreign('pne'),
        heartbeat: false,
        reconnect: false,
      }),
    ).rejects.toSatisfy((e) => isTransportError(e));
  });

  it('a GW with a certificate from another CA is refused by the server', async () => {
    await expect(
      connectSession(server.url, {
        ...(await foreign('gw')),
        expectedServerRole: 'server',
        heartbeat: false,
      }),
    ).rejects.toSatisfy((e) => isTransportError(e));
  });

  it('a TLS 1.2 client is refused by the server and the GW', async () => {
    for (const url of [server.url, gw.url]) {
      const u = new URL(url);
      const err = await new Promise<Error | undefined>((resolve) => {
        const s = tls.connect({
          host: u.hostname,
          port: Number(u.port),
          maxVersion: 'TLSv1.2',
          rejectUnauthorized: false,
        });
        s.once('secureConnect', () => {
          s.destroy();
          resolve(undefined);
        });
        s.once('error', (e) => resolve(e));
      });
      expect(err).toBeDefined();
    }
  });

  it('enrollment with a used, expired or wrong-role token is refused', async () => {
    const token = await server.admin.createToken('pne');
    await PneClient.enroll({ enrollUrl: gw.enrollUrl, caPem: server.caPem, token });
    const refused = (e: unknown) => isCpnsError(e, 'ENROLL_REFUSED');
    await expect(PneClient.enroll({ enrollUrl: gw.enrollUrl, caPem: server.caPem, token })).rejects.toSatisfy(
      refused,
    );
    const wrong = await server.admin.createToken('gw');
    await expect(
      PneClient.enroll({ enrollUrl: gw.enrollUrl, caPem: server.caPem, token: wrong }),
    ).rejects.toSatisfy(refused);
    const gwWrong = await server.admin.createToken('pne');
    await expect(
      PnGateway.enroll({ enrollUrl: server.enrollUrl, caPem: server.caPem, token: gwWrong }),
    ).rejects.toSatisfy(refused);
    const short = await server.admin.createToken('pne', 1);
    await sleep(1100);
    await expect(
      PneClient.enroll({ enrollUrl: gw.enrollUrl, caPem: server.caPem, token: short }),
    ).rejects.toSatisfy(refused);
    await expect(
      PneClient.enroll({ enrollUrl: gw.enrollUrl, caPem: server.caPem, token: 'never-issued' }),
    ).rejects.toSatisfy(refused);
  });

  it('revoking a PNE closes its session at once, removes it from its SGs with a new key, refuses it after', async () => {
    const [a, b] = await Promise.all([startPne(server, gw), startPne(server, gw)]);
    const { sgId } = await a.createGroup({ name: 'rev', joinPolicy: 'open' });
    await b.joinGroup(sgId);
    // The join updated the key (update on join): epoch 2; the revocation makes it 3.
    await until(() => a.currentEpoch(sgId) === 2 && b.currentEpoch(sgId) === 2);
    const revoked = new Promise((r) => b.once('revoked', r));
    await server.admin.revoke(b.identity);
    await revoked;
    await until(() => a.currentEpoch(sgId) === 3);
    expect((await server.admin.listGroups()).find((g) => g.sgId === sgId)!.members).toEqual([a.identity]);
    expect(await server.store.isRevoked(b.identity)).toBe(true);
    await a.close();
  });

  it('a revoked PNE is refused at connect (GW learned it) and after a GW restart (server refuses attach)', async () => {
    const gw2 = await startGateway(server);
    const creds = await PneClient.enroll({
      enrollUrl: gw2.enrollUrl,
      caPem: server.caPem,
      token: await server.admin.createToken('pne'),
    });
    await server.admin.revoke(creds.identity);
    // gw2 never saw this PNE revoked: the server refuses its attach, the GW closes the session.
    await expect(
      PneClient.connect({ gwUrl: gw2.url, credentials: creds, heartbeat: false, reconnect: false }),
    ).rejects.toSatisfy((e) => isCpnsError(e, 'REVOKED'));
    // Now the GW knows: refused at the upgrade.
    await expect(
      PneClient.connect({ gwUrl: gw2.url, credentials: creds, heartbeat: false, reconnect: false }),
    ).rejects.toSatisfy((e) => isTransportError(e, 'REVOKED'));
    await gw2.close();
  });

  it('revoking a GW closes its session and refuses its reconnects', async () => {
    const creds = await PnGateway.enroll({
      enrollUrl: server.enrollUrl,
      caPem: server.caPem,
      token: await server.admin.createToken('gw'),
    });
    const g = await PnGateway.start({
      serverUrl: server.url,
      credentials: creds,
      heartbeat: false,
      reconnect: BACKOFF,
    });
    const revoked = new Promise((r) => g.once('revoked', r));
    await server.admin.revoke(g.identity);
    await revoked;
    expect(g.connected).toBe(false);
    await expect(
      PnGateway.start({ serverUrl: server.url, credentials: creds, heartbeat: false, reconnect: BACKOFF }),
    ).rejects.toSatisfy((e) => isTransportError(e, 'REVOKED'));
    await g.close();
  });
});
