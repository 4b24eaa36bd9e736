/**
 * Named string formats used by the message schemas. Each pattern is anchored and linear-time (no nested
 * ambiguous quantifiers), and only runs after the length bound has been checked.
 */
const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';

/** PEM body lines: base64 characters then a line break; '-' is outside the class so the END line is unambiguous. */
const PEM_LINES = '(?:[A-Za-z0-9+/=]+\\r?\\n)+';

function pem(label: string): string {
  return `-----BEGIN ${label}-----\\r?\\n${PEM_LINES}-----END ${label}-----`;
}

export const formats = {
  /** Lowercase RFC 9562 UUID text (any version). Service Group ids, tree ids. */
  uuid: new RegExp(`^${UUID}$`),
  /** PNE identity as named in its certificate. */
  pneId: new RegExp(`^urn:cpns:pne:${UUID}$`),
  /** PN GW identity as named in its certificate. */
  gwId: new RegExp(`^urn:cpns:gw:${UUID}$`),
  /** Enrollment token: printable ASCII without spaces. */
  token: /^[\x21-\x7e]+$/,
  /** One PEM CERTIFICATE REQUEST (PKCS#10). */
  pemCsr: new RegExp(`^${pem('CERTIFICATE REQUEST')}\\r?\\n?$`),
  /** One or more PEM CERTIFICATEs (a certificate, optionally followed by its chain). */
  pemCert: new RegExp(`^(?:${pem('CERTIFICATE')}\\r?\\n?)+$`),
  /** Stable error code, e.g. BAD_MAC. */
  errorCode: /^[A-Z][A-Z0-9_]*$/,
  /** Human-readable single-line text: no control characters. */
  text: /^\P{Cc}*$/u,
} as const;

export type FormatName = keyof typeof formats;
