import { X509Certificate } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  certInfo,
  createCa,
  generateKeyAndCsr,
  identityFromCert,
  issueFromCsr,
  loadCa,
  parseIdentity,
} from '../../src/transport/ca.js';
import { isTransportError } from '../../src/transport/errors.js';
import { makePki, type Pki } from './fixtures.js';

let pki: Pki;
beforeAll(async () => {
  pki = await makePki();
});

describe('CPNS CA', () => {
  it('issues device certificates naming the identity in one SAN URI, chained to the CA', () => {
    const cert = new X509Certificate(pki.pne.certPem);
    const ca = new X509Certificate(pki.ca.certPem);
    expect(cert.checkIssued(ca)).toBe(true);
    expect(cert.verify(ca.publicKey)).toBe(true);
    expect(identityFromCert(pki.pne.certPem)).toBe(pki.pne.identity);
    expect(cert.serialNumber.length).toBe(32); // 16 bytes
    expect(ca.ca).toBe(true);
    expect(cert.ca).toBe(false);
  });

  it('gives GWs serverAuth (PNEs connect to them) and PNEs clientAuth only', () => {
    const gw = new X509Certificate(pki.gw.certPem);
    const pne = new X509Certificate(pki.pne.certPem);
    expect(gw.keyUsage).toEqual(expect.arrayContaining(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']));
    expect(pne.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']);
  });

  it('issues server certificates with DNS and IP SANs', () => {
    const s = new X509Certificate(pki.server.certPem);
    expect(s.checkHost('localhost')).toBe('localhost');
    expect(s.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(certInfo(pki.server.certPem).role).toBe('server');
  });

  it('refuses a CSR whose signature does not verify', async () => {
    const { csrPem } = await generateKeyAndCsr('x');
    const der = Buffer.from(csrPem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    der[der.length - 5]! ^= 0x01; // flip a bit inside the signature
    const bad = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    await expect(
      issueFromCsr(pki.ca, bad, 'urn:cpns:pne:123e4567-e89b-12d3-a456-426614174000'),
    ).rejects.toSatisfy((e) => isTransportError(e, 'BAD_CSR'));
    await expect(
      issueFromCsr(pki.ca, 'garbage', 'urn:cpns:pne:123e4567-e89b-12d3-a456-426614174000'),
    ).rejects.toSatisfy((e) => isTransportError(e, 'BAD_CSR'));
    await expect(
      issueFromCsr(pki.ca, 'x'.repeat(9000), 'urn:cpns:pne:123e4567-e89b-12d3-a456-426614174000'),
    ).rejects.toSatisfy((e) => isTransportError(e, 'BAD_CSR'));
  });

  it('refuses to issue for a malformed identity', async () => {
    const { csrPem } = await generateKeyAndCsr('x');
    await expect(issueFromCsr(pki.ca, csrPem, 'urn:cpns:pne:not-a-uuid')).rejects.toSatisfy((e) =>
      isTransportError(e, 'BAD_IDENTITY'),
    );
  });

  it('a certificate without a CPNS identity has none', () => {
    expect(() => identityFromCert(pki.ca.certPem)).toThrow(expect.objectContaining({ code: 'BAD_IDENTITY' }));
    expect(() => identityFromCert('not pem')).toThrow(expect.objectContaining({ code: 'BAD_IDENTITY' }));
  });

  it('loadCa refuses a key that is not the certificate’s', async () => {
    const other = await createCa('other');
    await expect(loadCa({ certPem: pki.ca.certPem, keyPem: other.keyPem })).rejects.toSatisfy((e) =>
      isTransportError(e, 'BAD_CA'),
    );
    const again = await loadCa({ certPem: pki.ca.certPem, keyPem: pki.ca.keyPem });
    expect(again.cert.subject).toBe(pki.ca.cert.subject);
  });

  it.each([
    ['urn:cpns:gw:123e4567-e89b-12d3-a456-426614174000', true],
    ['urn:cpns:pne:123e4567-e89b-12d3-a456-426614174000', true],
    ['urn:cpns:server:node-1', true],
    ['urn:cpns:PNE:123e4567-e89b-12d3-a456-426614174000', false],
    ['urn:cpns:pne:123E4567-E89B-12D3-A456-426614174000', false],
    ['urn:cpns:admin:x', false],
    ['urn:cpns:pne:', false],
    ['urn:cpns:server:-bad', false],
    ['cpns:pne:123e4567-e89b-12d3-a456-426614174000', false],
    [`urn:cpns:server:${'a'.repeat(200)}`, false],
  ])('parseIdentity(%s) valid=%s', (s, ok) => {
    if (ok) expect(parseIdentity(s).id.length).toBeGreaterThan(0);
    else expect(() => parseIdentity(s)).toThrow(expect.objectContaining({ code: 'BAD_IDENTITY' }));
  });
});
