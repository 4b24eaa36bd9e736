/**
 * The CPNS CA: a small X.509 CA run by the CPNS Server (docs/design.md §4 "Identities"). It issues the certificates that
 * the secure sessions of CPNS TS §5.3.2 authenticate with: every GW, PNE and server node holds an ECDSA P-256 key
 * and a certificate whose single `urn:cpns:<role>:<id>` SAN URI is its identity. Identities are only ever read
 * from a certificate that TLS verified against this CA, never from a name the peer claims in a message.
 *
 * Certificates are built with @peculiar/x509 over node's WebCrypto (no hand-built ASN.1, no hand-written crypto).
 */
// @peculiar/x509 resolves its algorithm providers with tsyringe, which needs the Reflect metadata polyfill loaded
// before the library is; this import must stay first.
import 'reflect-metadata';
import {
  createPrivateKey,
  createPublicKey,
  X509Certificate as NodeX509Certificate,
  webcrypto,
} from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import * as x509 from '@peculiar/x509';
import { TransportError } from './errors.js';

// Use node's own WebCrypto (OpenSSL) for every signature the library makes or checks.
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const EC_ALG = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGN_ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
/** A P-256 CSR is ~400 bytes of PEM; anything near this bound is not one of ours. Checked before parsing. */
const MAX_CSR_PEM = 8 * 1024;
/** Back-date notBefore a little so a peer whose clock is slightly behind does not reject a fresh certificate. */
const CLOCK_SKEW_MS = 5 * 60 * 1000;
const DAY_MS = 24 * 60 * 60 * 1000;

// ---------------------------------------------------------------------------------------------------------------
// Identities: urn:cpns:<role>:<id>
// ---------------------------------------------------------------------------------------------------------------

export type CpnsRole = 'server' | 'gw' | 'pne';

export interface CpnsIdentity {
  role: CpnsRole;
  /** A lowercase UUID for gw/pne; a DNS-label-like name for a server node. */
  id: string;
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const SERVER_NAME_RE = /^[a-z0-9](?:[a-z0-9.-]{0,62})$/;
const IDENTITY_RE = /^urn:cpns:(server|gw|pne):(.+)$/;

/** Parses `urn:cpns:<role>:<id>`; throws TransportError BAD_IDENTITY on anything else (strict: no case folding). */
export function parseIdentity(identity: string): CpnsIdentity {
  if (typeof identity !== 'string' || identity.length > 128) {
    throw new TransportError('BAD_IDENTITY', 'identity is not a CPNS URN', 'identity');
  }
  const m = IDENTITY_RE.exec(identity);
  const role = m?.[1] as CpnsRole | undefined;
  const id = m?.[2];
  if (role === undefined || id === undefined) {
    throw new TransportError('BAD_IDENTITY', 'identity is not a CPNS URN', 'identity');
  }
  const ok = role === 'server' ? SERVER_NAME_RE.test(id) : UUID_RE.test(id);
  if (!ok) throw new TransportError('BAD_IDENTITY', 'identity id is malformed', 'identity');
  return { role, id };
}

export function formatIdentity(role: CpnsRole, id: string): string {
  const s = `urn:cpns:${role}:${id}`;
  parseIdentity(s); // validate: never mint an identity that parseIdentity would refuse
  return s;
}

export function isIdentity(s: string): boolean {
  try {
    parseIdentity(s);
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// CA
// ---------------------------------------------------------------------------------------------------------------

export interface PemPair {
  certPem: string;
  /** PKCS#8 PEM ("BEGIN PRIVATE KEY"). */
  keyPem: string;
}

export interface Ca {
  readonly certPem: string;
  readonly keyPem: string;
  readonly cert: x509.X509Certificate;
  readonly key: webcrypto.CryptoKey;
}

function randomSerialHex(): string {
  // 16 random bytes (CA/B BR ask >= 64 bits of CSPRNG output). Clear the top bit so the DER INTEGER is positive
  // and set the next one so it is never shortened by a leading zero: the serial is always exactly 16 bytes.
  const b = webcrypto.getRandomValues(new Uint8Array(16));
  b[0] = ((b[0] ?? 0) & 0x7f) | 0x40;
  return Buffer.from(b).toString('hex');
}

function validity(days: number): { notBefore: Date; notAfter: Date } {
  if (!Number.isInteger(days) || days < 1 || days > 36500) {
    throw new TransportError('BAD_CA', 'validityDays must be an integer in 1..36500', 'validityDays');
  }
  const now = Date.now();
  return { notBefore: new Date(now - CLOCK_SKEW_MS), notAfter: new Date(now + days * DAY_MS) };
}

async function exportPkcs8Pem(key: webcrypto.CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

async function generateKeys(): Promise<webcrypto.CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(EC_ALG, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
}

/** Creates a new self-signed CPNS CA (ECDSA P-256, pathLen 0: it signs end-entity certificates only). */
export async function createCa(commonName: string, validityDays = 3650): Promise<PemPair> {
  const keys = await generateKeys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerialHex(),
    name: [{ CN: [commonName] }],
    ...validity(validityDays),
    keys,
    signingAlgorithm: SIGN_ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await exportPkcs8Pem(keys.privateKey) };
}

/** Loads CA material and checks that the key belongs to the certificate and that it is a CA certificate. */
export async function loadCa(material: PemPair): Promise<Ca> {
  let cert: x509.X509Certificate;
  let key: webcrypto.CryptoKey;
  try {
    cert = new x509.X509Certificate(material.certPem);
    key = await webcrypto.subtle.importKey(
      'pkcs8',
      x509.PemConverter.decodeFirst(material.keyPem),
      EC_ALG,
      false,
      ['sign'],
    );
  } catch (cause) {
    throw new TransportError('BAD_CA', 'CA certificate or key cannot be parsed', 'ca', { cause });
  }
  const bc = cert.getExtension(x509.BasicConstraintsExtension);
  if (!bc?.ca) throw new TransportError('BAD_CA', 'CA certificate lacks basicConstraints cA', 'ca');
  // The key must be the certificate's: compare the SPKI derived from the private key with the certificate's.
  const spkiFromKey = createPublicKey(createPrivateKey(material.keyPem)).export({
    type: 'spki',
    format: 'der',
  });
  if (!Buffer.from(cert.publicKey.rawData).equals(spkiFromKey)) {
    throw new TransportError('BAD_CA', 'CA key does not match the CA certificate', 'ca');
  }
  return { certPem: material.certPem, keyPem: material.keyPem, cert, key };
}

interface LeafParams {
  identity: string;
  publicKey: webcrypto.CryptoKey | x509.PublicKey;
  validityDays: number;
  serverAuth: boolean;
  dnsNames?: readonly string[];
  ips?: readonly string[];
}

async function issueLeaf(ca: Ca, p: LeafParams): Promise<x509.X509Certificate> {
  parseIdentity(p.identity);
  const san: { type: 'url' | 'dns' | 'ip'; value: string }[] = [{ type: 'url', value: p.identity }];
  for (const d of p.dnsNames ?? []) san.push({ type: 'dns', value: d });
  for (const ip of p.ips ?? []) san.push({ type: 'ip', value: ip });
  const eku = [x509.ExtendedKeyUsage.clientAuth];
  if (p.serverAuth) eku.push(x509.ExtendedKeyUsage.serverAuth);
  return x509.X509CertificateGenerator.create({
    serialNumber: randomSerialHex(),
    // The subject CN repeats the identity for humans reading logs; software reads the SAN URI only.
    subject: [{ CN: [p.identity] }],
    issuer: ca.cert.subjectName,
    ...validity(p.validityDays),
    publicKey: p.publicKey,
    signingKey: ca.key,
    signingAlgorithm: SIGN_ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      // ECDHE key exchange (TLS 1.3): the leaf key only ever signs.
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension(eku, false),
      new x509.SubjectAlternativeNameExtension(san, false),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert, false),
      await x509.SubjectKeyIdentifierExtension.create(p.publicKey),
    ],
  });
}

/**
 * Issues a device certificate from a CSR. The identity is decided by the caller (the server's enrollment logic,
 * from the one-time token), never taken from the CSR's subject. The CSR's self-signature proves possession of the
 * key. GWs get serverAuth too because PNEs open their secure session to the GW.
 */
export async function issueFromCsr(
  ca: Ca,
  csrPem: string,
  identity: string,
  validityDays = 365,
): Promise<string> {
  const { role } = parseIdentity(identity);
  if (typeof csrPem !== 'string' || csrPem.length > MAX_CSR_PEM) {
    throw new TransportError('BAD_CSR', 'CSR missing or too large', 'csr');
  }
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
  } catch (cause) {
    throw new TransportError('BAD_CSR', 'CSR cannot be parsed', 'csr', { cause });
  }
  const alg = csr.publicKey.algorithm as webcrypto.EcKeyAlgorithm;
  if (alg.name !== 'ECDSA' || alg.namedCurve !== 'P-256') {
    throw new TransportError('BAD_CSR', 'CSR key must be ECDSA P-256', 'csr');
  }
  let ok = false;
  try {
    ok = await csr.verify();
  } catch {
    ok = false;
  }
  if (!ok) throw new TransportError('BAD_CSR', 'CSR signature does not verify', 'csr');
  const cert = await issueLeaf(ca, {
    identity,
    publicKey: csr.publicKey,
    validityDays,
    serverAuth: role === 'gw' || role === 'server',
  });
  return cert.toString('pem');
}

export interface ServerCertOptions {
  dnsNames?: readonly string[];
  ips?: readonly string[];
  validityDays?: number;
}

/** Issues a key pair and certificate for a server node (`urn:cpns:server:<name>`), with DNS/IP SANs for TLS. */
export async function issueServerCert(
  ca: Ca,
  identity: string,
  opts: ServerCertOptions = {},
): Promise<PemPair> {
  if (parseIdentity(identity).role !== 'server') {
    throw new TransportError(
      'BAD_IDENTITY',
      'server certificates need a urn:cpns:server identity',
      'identity',
    );
  }
  const keys = await generateKeys();
  const cert = await issueLeaf(ca, {
    identity,
    publicKey: keys.publicKey,
    validityDays: opts.validityDays ?? 825,
    serverAuth: true,
    dnsNames: opts.dnsNames ?? ['localhost'],
    ips: opts.ips ?? ['127.0.0.1', '::1'],
  });
  return { certPem: cert.toString('pem'), keyPem: await exportPkcs8Pem(keys.privateKey) };
}

/**
 * Device side of enrollment: a fresh P-256 key and a CSR signed with it. The hint only fills the CSR subject for
 * humans; the CA ignores it and names the identity bound to the enrollment token.
 */
export async function generateKeyAndCsr(
  identityHint = 'cpns-device',
): Promise<{ keyPem: string; csrPem: string }> {
  const keys = await generateKeys();
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: [{ CN: [identityHint] }],
    keys,
    signingAlgorithm: SIGN_ALG,
  });
  return { keyPem: await exportPkcs8Pem(keys.privateKey), csrPem: csr.toString('pem') };
}

// ---------------------------------------------------------------------------------------------------------------
// Reading identities from certificates
// ---------------------------------------------------------------------------------------------------------------

export type CertInput = string | Uint8Array | PeerCertificate | NodeX509Certificate;

function toX509(cert: CertInput): x509.X509Certificate {
  try {
    if (typeof cert === 'string') return new x509.X509Certificate(cert);
    if (cert instanceof Uint8Array) return new x509.X509Certificate(cert);
    if (cert instanceof NodeX509Certificate) return new x509.X509Certificate(cert.raw);
    // tls.PeerCertificate: `raw` is the DER; an empty object means "no certificate".
    if (cert && cert.raw instanceof Uint8Array) return new x509.X509Certificate(cert.raw);
  } catch (cause) {
    throw new TransportError('BAD_IDENTITY', 'certificate cannot be parsed', 'certificate', { cause });
  }
  throw new TransportError('BAD_IDENTITY', 'no certificate', 'certificate');
}

export interface CertInfo {
  identity: string;
  role: CpnsRole;
  /** Lowercase hex of the serial number: the key for revocation lists. */
  serialHex: string;
  notAfter: Date;
}

/**
 * The CPNS identity of a certificate: its one SAN URI starting `urn:cpns:`. Zero or several such URIs is an
 * error (a certificate naming two identities would let one session act as both).
 */
export function certInfo(cert: CertInput): CertInfo {
  const c = toX509(cert);
  const san = c.getExtension(x509.SubjectAlternativeNameExtension);
  const uris = (san?.names.items ?? [])
    .filter((n) => n.type === 'url' && n.value.startsWith('urn:cpns:'))
    .map((n) => n.value);
  if (uris.length !== 1) {
    throw new TransportError(
      'BAD_IDENTITY',
      'certificate must name exactly one CPNS identity',
      'subjectAltName',
    );
  }
  const identity = uris[0]!;
  const { role } = parseIdentity(identity);
  return { identity, role, serialHex: c.serialNumber.toLowerCase(), notAfter: c.notAfter };
}

export function identityFromCert(cert: CertInput): string {
  return certInfo(cert).identity;
}

/** OID of the extended key usage id-kp-clientAuth (RFC 5280 §4.2.1.12). */
const CLIENT_AUTH_OID = '1.3.6.1.5.5.7.3.2';

/**
 * Whether `leaf` is a client certificate the CPNS CA `ca` issued that is valid at `now`: issued by it (issuer name
 * and key identifier, `checkIssued`), signed by its key, not itself a CA, for client authentication (every CPNS
 * leaf has clientAuth, `issueLeaf`), and within its own and the CA's validity. The CPNS PKI has one level (the CA,
 * pathLen 0, issues every identity directly), so this is the whole path; a chain the peer sends is not used.
 * Used where node's TLS server cannot verify for us: the server end of a tunnel (tunnel-tls.ts). The TLS
 * handshake itself proves the peer holds the leaf's key (CertificateVerify).
 */
export function issuedByCa(leaf: NodeX509Certificate, ca: NodeX509Certificate, now = Date.now()): boolean {
  try {
    if (leaf.ca || !ca.ca) return false;
    if (!(leaf.keyUsage ?? []).includes(CLIENT_AUTH_OID)) return false;
    if (!leaf.checkIssued(ca) || !leaf.verify(ca.publicKey)) return false;
    for (const c of [leaf, ca]) {
      const from = Date.parse(c.validFrom);
      const to = Date.parse(c.validTo);
      if (!(from <= now && now <= to)) return false; // NaN (unparsable) refuses too
    }
    return true;
  } catch {
    return false;
  }
}
