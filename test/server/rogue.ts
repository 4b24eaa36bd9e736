/**
 * The rogue-but-enrolled gateway of the attack tests: an enrolled, registered GW that speaks raw frames, and PNEs
 * enrolled through it whose keys the test holds (so it can prove them with their own tunnels, rule A1).
 */

import { type Credentials, enrollAt } from '../../src/protocol/enroll-client.js';
import type { CpnsServer } from '../../src/server/index.js';
import { generateKeyAndCsr, identityFromCert } from '../../src/transport/ca.js';
import { connectSession } from '../../src/transport/connect-session.js';
import { openTunnelTls, type TunnelTlsSocket } from '../../src/transport/tunnel-tls.js';
import { until } from '../integration/helpers.js';
import { RawPeer } from '../integration/raw.js';

export async function rogueGw(server: CpnsServer): Promise<RawPeer> {
  const creds = await enrollAt(
    server.enrollUrl,
    server.caPem,
    await server.admin.createToken('gw'),
    'gw',
    'server',
  );
  const raw = new RawPeer(
    await connectSession(server.url, { ...creds, expectedServerRole: 'server', heartbeat: false }),
  );
  const reg = raw.control({ t: 'gw.register' });
  await raw.next((m) => m.t === 'registered' && m.id === reg);
  return raw;
}

/** A PNE enrolled through `raw`, attached there (claim) and proven by its own tunnel through `raw`'s session. */
export async function provenPne(
  server: CpnsServer,
  raw: RawPeer,
): Promise<{ creds: Credentials; tunnel: TunnelTlsSocket }> {
  const { csrPem, keyPem } = await generateKeyAndCsr();
  const id = raw.control({
    t: 'enroll.relay',
    request: { token: await server.admin.createToken('pne'), role: 'pne', csr: csrPem },
  });
  const resp = await raw.next((m) => m.t === 'enroll.response' && m.id === id);
  if (resp.t !== 'enroll.response') throw new Error('no enrollment');
  const creds = { identity: identityFromCert(resp.cert), certPem: resp.cert, keyPem, caPem: server.caPem };
  const att = raw.control({ t: 'pne.attach', pneId: creds.identity, media: ['wifi'] });
  await raw.next((m) => m.t === 'ok' && m.ref === att);
  const tunnel = await openTunnelTls(raw.session, creds);
  await until(async () => (await server.store.getPne(creds.identity))?.online === true);
  return { creds, tunnel };
}
