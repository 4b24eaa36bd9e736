/**
 * At the roles (docs/transport.md "Limits"): enrollment is its own bounded, anonymous listener; the session ports of the server
 * and the GW accept only certificates of the CPNS CA; the one-time token is checked before any CSR work.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../src/core/errors.js';
import { enrollAt, type PnGateway } from '../../src/gateway/index.js';
import type { CpnsServer } from '../../src/server/index.js';
import { connectAnonymousSession } from '../../src/transport/connect-session.js';
import { isTransportError } from '../../src/transport/errors.js';
import { startGateway, startServer, tempDir } from '../integration/helpers.js';
import { RawPeer } from '../integration/raw.js';

let tmp: ReturnType<typeof tempDir>;
let server: CpnsServer;
let gw: PnGateway;

beforeAll(async () => {
  tmp = tempDir();
  server = await startServer(tmp.dir, { enrollLimits: { maxUnauthenticatedPerAddress: 2 } });
  gw = await startGateway(server);
});

afterAll(async () => {
  await gw?.close();
  await server?.close();
  tmp.cleanup();
});

const code = (e: unknown) => (isTransportError(e) ? e.code : (e as { code?: string }).code);

describe('the anonymous surface', () => {
  it('enrollment listens on its own port, apart from the session port', () => {
    expect(new URL(server.enrollUrl).port).not.toBe(new URL(server.url).port);
    expect(new URL(gw.enrollUrl).port).not.toBe(new URL(gw.url).port);
    expect(new URL(server.enrollUrl).pathname).toBe('/enroll');
  });

  it.each([
    ['server', () => server.url, 'server'],
    ['GW', () => gw.url, 'gw'],
  ] as const)(
    'the %s session port refuses a client without a certificate in the TLS handshake',
    async (_n, url, role) => {
      await expect(
        connectAnonymousSession(url(), { caPem: server.caPem, expectedServerRole: role, heartbeat: false }),
      ).rejects.toSatisfy((e) => code(e) === 'TLS_REFUSED');
    },
  );

  it('the token is checked before the CSR: a bad token with a garbage CSR is refused for the token', async () => {
    const s = new RawPeer(
      await connectAnonymousSession(server.enrollUrl, {
        caPem: server.caPem,
        expectedServerRole: 'server',
        heartbeat: false,
      }),
    );
    const id = s.control({
      t: 'enroll.request',
      token: 'never-issued-token-0123456789',
      role: 'gw',
      csr: `-----BEGIN CERTIFICATE REQUEST-----\n${'A'.repeat(2000)}\n-----END CERTIFICATE REQUEST-----\n`,
    });
    const err = await s.next((m) => m.t === 'error' && m.ref === id);
    // the field says why (the device's operator can act on it): token.unknown|used|expired|wrong_role
    expect(err.t === 'error' && [err.code, err.field]).toEqual([ErrorCode.ENROLL_REFUSED, 'token.unknown']);
    s.session.close();
  });

  it('a valid token still enrolls, through the enrollment listener only', async () => {
    const creds = await enrollAt(
      server.enrollUrl,
      server.caPem,
      await server.admin.createToken('gw'),
      'gw',
      'server',
    );
    expect(creds.identity).toMatch(/^urn:cpns:gw:/);
  });

  it('enrollment connections are bounded per address: the limit is served, one past it is refused', async () => {
    const opts = { caPem: server.caPem, expectedServerRole: 'server' as const, heartbeat: false as const };
    const a = await connectAnonymousSession(server.enrollUrl, opts);
    const b = await connectAnonymousSession(server.enrollUrl, opts);
    await expect(connectAnonymousSession(server.enrollUrl, opts)).rejects.toBeTruthy();
    expect(a.isOpen && b.isOpen).toBe(true);
    a.close();
    b.close();
  });
});
