/**
 * `issuedByCa` (src/transport/ca.ts): the whole certificate check of the server end of a PNE tunnel, where node's
 * TLS server does not verify for us (tunnel-tls.ts). Each case is a certificate an attacker could present: one
 * of another CA, one that copies the CA's name, one signed by a CPNS leaf, an expired or not yet valid one from
 * the right CA, one without clientAuth, the CA's own certificate.
 */
import 'reflect-metadata';
import { X509Certificate as NodeX509, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { beforeAll, describe, expect, it } from 'vitest';
import { type Ca, issuedByCa } from '../../src/transport/ca.js';
import { makePki, type Pki } from './fixtures.js';

const ALG = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;
const DAY = 86_400_000;

let pki: Pki;
let ca: NodeX509;

beforeAll(async () => {
  pki = await makePki();
  ca = new NodeX509(pki.ca.certPem);
});

async function keys(): Promise<webcrypto.CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
}

/** A leaf like the CA's own (issueLeaf), with what the case changes. */
async function leaf(o: {
  signer: { name: string; key: webcrypto.CryptoKey; cert?: x509.X509Certificate };
  notBefore?: Date;
  notAfter?: Date;
  eku?: string[];
  isCa?: boolean;
}): Promise<NodeX509> {
  const k = await keys();
  const now = Date.now();
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(o.isCa ?? false, undefined, true),
    new x509.KeyUsagesExtension(
      o.isCa
        ? x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.digitalSignature
        : x509.KeyUsageFlags.digitalSignature,
      true,
    ),
    new x509.ExtendedKeyUsageExtension(o.eku ?? [x509.ExtendedKeyUsage.clientAuth], false),
    new x509.SubjectAlternativeNameExtension([{ type: 'url', value: 'urn:cpns:pne:forged' }], false),
    await x509.SubjectKeyIdentifierExtension.create(k.publicKey),
  ];
  if (o.signer.cert) extensions.push(await x509.AuthorityKeyIdentifierExtension.create(o.signer.cert, false));
  const c = await x509.X509CertificateGenerator.create({
    serialNumber: '4a01',
    subject: 'CN=urn:cpns:pne:forged',
    issuer: o.signer.name,
    notBefore: o.notBefore ?? new Date(now - 60_000),
    notAfter: o.notAfter ?? new Date(now + DAY),
    publicKey: k.publicKey,
    signingKey: o.signer.key,
    signingAlgorithm: SIGN,
    extensions,
  });
  return new NodeX509(c.toString('pem'));
}

function caSigner(c: Ca) {
  return { name: c.cert.subject, key: c.key, cert: c.cert };
}

describe('issuedByCa: the tunnel server end accepts only a valid client certificate of the CPNS CA', () => {
  it('accepts a PNE certificate the CA issued', () => {
    expect(issuedByCa(new NodeX509(pki.pne.certPem), ca)).toBe(true);
  });

  it('accepts a leaf of the CA with every field as issueLeaf makes it', async () => {
    expect(issuedByCa(await leaf({ signer: caSigner(pki.ca) }), ca)).toBe(true);
  });

  it('refuses a certificate of another CA', () => {
    expect(issuedByCa(new NodeX509(pki.foreign.certPem), ca)).toBe(false);
  });

  it('refuses a certificate that names the CA as issuer but is signed by another key', async () => {
    const k = await keys();
    expect(issuedByCa(await leaf({ signer: { name: pki.ca.cert.subject, key: k.privateKey } }), ca)).toBe(
      false,
    );
  });

  it('refuses a certificate signed by a CPNS leaf (the PKI has one level)', async () => {
    // A PNE's own key and certificate, used as if it were a CA.
    const pneKey = await webcrypto.subtle.importKey(
      'pkcs8',
      x509.PemConverter.decode(pki.pne.keyPem)[0]!,
      ALG,
      false,
      ['sign'],
    );
    const pneCert = new x509.X509Certificate(pki.pne.certPem);
    const child = await leaf({ signer: { name: pneCert.subject, key: pneKey, cert: pneCert } });
    expect(issuedByCa(child, ca)).toBe(false);
    expect(issuedByCa(child, new NodeX509(pki.pne.certPem))).toBe(false);
  });

  it('refuses an expired certificate of the CA, and one not yet valid; accepts it inside its validity', async () => {
    // The CA itself is valid from 5 minutes before it was made (CLOCK_SKEW_MS), for 10 years.
    const now = Date.now();
    const expired = await leaf({
      signer: caSigner(pki.ca),
      notBefore: new Date(now - 120_000),
      notAfter: new Date(now - 60_000),
    });
    const future = await leaf({
      signer: caSigner(pki.ca),
      notBefore: new Date(now + DAY),
      notAfter: new Date(now + 10 * DAY),
    });
    expect(issuedByCa(expired, ca)).toBe(false);
    expect(issuedByCa(future, ca)).toBe(false);
    expect(issuedByCa(expired, ca, now - 90_000)).toBe(true);
    expect(issuedByCa(future, ca, now + 5 * DAY)).toBe(true);
  });

  it('refuses a CA leaf without clientAuth', async () => {
    expect(
      issuedByCa(await leaf({ signer: caSigner(pki.ca), eku: [x509.ExtendedKeyUsage.serverAuth] }), ca),
    ).toBe(false);
  });

  it("refuses a CA certificate issued by the CA, and the CA's own certificate", async () => {
    expect(issuedByCa(await leaf({ signer: caSigner(pki.ca), isCa: true }), ca)).toBe(false);
    expect(issuedByCa(ca, ca)).toBe(false);
  });

  it('refuses when the issuer given is not a CA', () => {
    expect(issuedByCa(new NodeX509(pki.pne.certPem), new NodeX509(pki.pne2.certPem))).toBe(false);
  });
});
