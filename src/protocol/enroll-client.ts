/**
 * The device side of enrollment, shared by the PN GW (at the server) and the PNE (through its GW): an anonymous
 * session to an endpoint's enrollment listener (`enrollUrl`: its own port, docs/transport.md), one
 * enroll.request with the one-time token and a fresh CSR. Below the roles, so the PNE SDK does not load the GW.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import type { MessageOf } from '../core/codec/index.js';
import { CpnsError, ErrorCode } from '../core/errors.js';
import { generateKeyAndCsr, identityFromCert } from '../transport/ca.js';
import { connectAnonymousSession } from '../transport/connect-session.js';
import { decodeFrame } from '../transport/framing.js';
import { Control, decodeControl, fail } from './control.js';

/** An enrolled identity: its certificate and key, and the CA it trusts. */
export interface Credentials {
  identity: string;
  certPem: string;
  keyPem: string;
  caPem: string;
}

/** How long the device waits for the endpoint (and, through a GW, the server) to answer (ms). */
export const ENROLL_TIMEOUT_MS = 15_000;

/** Enrolls at `enrollUrl`; `expectedRole` is the role of the endpoint's certificate. */
export async function enrollAt(
  enrollUrl: string,
  caPem: string,
  token: string,
  role: MessageOf<'enroll.request'>['role'],
  expectedRole: 'server' | 'gw',
): Promise<Credentials> {
  const { keyPem, csrPem } = await generateKeyAndCsr(`cpns-${role}`);
  const s = await connectAnonymousSession(enrollUrl, {
    caPem,
    expectedServerRole: expectedRole,
    heartbeat: false,
  });
  const control = Control.forSession(s);
  s.on('frame', (buf: Buffer) => {
    try {
      const f = decodeFrame(buf, { maxFrame: s.maxPayload });
      if (f.kind === 'control') control.accept(decodeControl(f.payload));
    } catch {}
  });
  s.once('close', () => control.failAll(new CpnsError(ErrorCode.ENROLL_REFUSED, 'enrollment refused')));
  try {
    const r = await control.request({ t: 'enroll.request', token, role, csr: csrPem }, ENROLL_TIMEOUT_MS);
    if (r.t !== 'enroll.response') fail(ErrorCode.UNEXPECTED_MESSAGE);
    const identity = identityFromCert(r.cert);
    if (!identity.startsWith(`urn:cpns:${role}:`)) fail(ErrorCode.ENROLL_REFUSED);
    if (!issuedForUs(r.cert, keyPem, caPem)) fail(ErrorCode.ENROLL_REFUSED);
    return { identity, certPem: r.cert, keyPem, caPem };
  } finally {
    s.close();
  }
}

/**
 * The certificate must carry our own key and be signed by our CA. Through a PN GW, the answer comes from the GW:
 * a GW that replaced our CSR with its own (it sees the enrollment request, SECURITY.md "Known limitations") would
 * return a certificate for its key; we refuse it here instead of failing later with an unusable identity.
 */
function issuedForUs(certPem: string, keyPem: string, caPem: string): boolean {
  try {
    const cert = new X509Certificate(certPem);
    return (
      cert.checkPrivateKey(createPrivateKey(keyPem)) && cert.verify(new X509Certificate(caPem).publicKey)
    );
  } catch {
    return false;
  }
}
