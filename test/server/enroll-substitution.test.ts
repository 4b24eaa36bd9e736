/**
 * A rogue-but-enrolled PN GW sees a PNE's enroll.request (the enrollment TLS ends at the GW, SECURITY.md "Known
 * limitations"). It can spend the one-time token with a CSR of its own and hand the PNE a certificate for the GW's
 * key. The PNE must refuse that answer (ENROLL_REFUSED) rather than store an identity whose key it does not hold;
 * likewise a certificate that the CPNS CA did not sign.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../src/core/errors.js';
import { Control, readEnrollRequest } from '../../src/protocol/control.js';
import { enrollAt } from '../../src/protocol/enroll-client.js';
import type { CpnsServer } from '../../src/server/index.js';
import { createCa, generateKeyAndCsr, issueFromCsr, loadCa } from '../../src/transport/ca.js';
import { SecureServer } from '../../src/transport/secure-server.js';
import type { Session } from '../../src/transport/session.js';
import { startServer, tempDir } from '../integration/helpers.js';
import type { RawPeer } from '../integration/raw.js';
import { rogueGw } from './rogue.js';

let tmp: ReturnType<typeof tempDir>;
let server: CpnsServer;
let upstream: RawPeer;
let rogueEnroll: SecureServer;
/** What the rogue GW answers a PNE's enroll.request with. */
let answer: (token: string, csr: string) => Promise<string>;

beforeAll(async () => {
  tmp = tempDir();
  server = await startServer(tmp.dir);
  const gwToken = await server.admin.createToken('gw');
  const { identity: _identity, ...gwCreds } = await enrollAt(
    server.enrollUrl,
    server.caPem,
    gwToken,
    'gw',
    'server',
  );
  upstream = await rogueGw(server);
  rogueEnroll = new SecureServer({ mode: 'enrollment', ...gwCreds, heartbeat: false });
  rogueEnroll.on('session', (s: Session) => {
    const control = Control.forSession(s);
    s.on('frame', (buf: Buffer) => {
      const msg = readEnrollRequest(buf, s, control);
      if (!msg) return;
      answer(msg.token, msg.csr).then(
        (cert) => control.send({ t: 'enroll.response', id: msg.id, cert, caCert: server.caPem }),
        () => control.sendError(ErrorCode.ENROLL_REFUSED, msg.id),
      );
    });
  });
  await rogueEnroll.listen();
});

afterAll(async () => {
  await rogueEnroll?.close(100);
  upstream?.session.close();
  await server?.close();
  tmp.cleanup();
});

describe('enrollment through a rogue GW', () => {
  it("a certificate for the GW's own key (token spent with a substituted CSR) is refused by the PNE", async () => {
    answer = async (token) => {
      const { csrPem } = await generateKeyAndCsr();
      const id = upstream.control({ t: 'enroll.relay', request: { token, role: 'pne', csr: csrPem } });
      const r = await upstream.next((m) => m.t === 'enroll.response' && m.id === id);
      if (r.t !== 'enroll.response') throw new Error('no certificate');
      return r.cert; // a genuine CPNS certificate, for the rogue's key
    };
    const token = await server.admin.createToken('pne');
    await expect(enrollAt(rogueEnroll.url, server.caPem, token, 'pne', 'gw')).rejects.toMatchObject({
      code: ErrorCode.ENROLL_REFUSED,
    });
  });

  it("a certificate for the PNE's own key that the CPNS CA did not sign is refused", async () => {
    const foreign = await loadCa(await createCa('not the CPNS CA'));
    answer = async (_token, csr) => issueFromCsr(foreign, csr, `urn:cpns:pne:${randomUUID()}`);
    const token = await server.admin.createToken('pne');
    await expect(enrollAt(rogueEnroll.url, server.caPem, token, 'pne', 'gw')).rejects.toMatchObject({
      code: ErrorCode.ENROLL_REFUSED,
    });
  });
});
