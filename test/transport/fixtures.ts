import 'reflect-metadata';
import { randomUUID, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import {
  type Ca,
  createCa,
  formatIdentity,
  generateKeyAndCsr,
  issueFromCsr,
  issueServerCert,
  loadCa,
} from '../../src/transport/ca.js';

export interface Creds {
  identity: string;
  certPem: string;
  keyPem: string;
  caPem: string;
}

export interface Pki {
  ca: Ca;
  server: Creds;
  gw: Creds;
  pne: Creds;
  pne2: Creds;
  /** A PNE certified by another CA: must be refused everywhere. */
  foreign: Creds;
}

export async function device(ca: Ca, role: 'gw' | 'pne'): Promise<Creds> {
  const identity = formatIdentity(role, randomUUID());
  const { keyPem, csrPem } = await generateKeyAndCsr('hint');
  const certPem = await issueFromCsr(ca, csrPem, identity, 30);
  return { identity, certPem, keyPem, caPem: ca.certPem };
}

/**
 * A PNE certificate of `ca`, made as the CA makes them but expired a minute ago: the right CA, the wrong time.
 * (The CA itself refuses to issue one: its validity is at least a day from now.)
 */
export async function expiredPne(ca: Ca): Promise<Creds> {
  const identity = formatIdentity('pne', randomUUID());
  const alg = { name: 'ECDSA', namedCurve: 'P-256' } as const;
  const k = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: '4b01',
    subject: [{ CN: [identity] }],
    issuer: ca.cert.subjectName,
    notBefore: new Date(now - 120_000),
    notAfter: new Date(now - 60_000),
    publicKey: k.publicKey,
    signingKey: ca.key,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth], false),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: identity }], false),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert, false),
      await x509.SubjectKeyIdentifierExtension.create(k.publicKey),
    ],
  });
  const keyPem = x509.PemConverter.encode(
    await webcrypto.subtle.exportKey('pkcs8', k.privateKey),
    'PRIVATE KEY',
  );
  return { identity, certPem: cert.toString('pem'), keyPem, caPem: ca.certPem };
}

export async function makePki(): Promise<Pki> {
  const ca = await loadCa(await createCa('CPNS test CA'));
  const serverIdentity = formatIdentity('server', 'node1');
  const s = await issueServerCert(ca, serverIdentity);
  const other = await loadCa(await createCa('Other CA'));
  const foreign = await device(other, 'pne');
  return {
    ca,
    server: { identity: serverIdentity, ...s, caPem: ca.certPem },
    gw: await device(ca, 'gw'),
    pne: await device(ca, 'pne'),
    pne2: await device(ca, 'pne'),
    foreign: { ...foreign, caPem: ca.certPem },
  };
}

export function waitFor<T>(emitter: NodeJS.EventEmitter, event: string, timeoutMs = 5000): Promise<T[]> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timeout waiting for ${event}`)), timeoutMs);
    emitter.once(event, (...args: T[]) => {
      clearTimeout(t);
      resolve(args);
    });
  });
}
