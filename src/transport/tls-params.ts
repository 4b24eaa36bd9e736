/**
 * TLS parameters of the secure sessions (session and enrollment listeners, their clients): TLS 1.3 only, and only
 * the key-exchange groups X25519 and P-256 (docs/transport.md "Secure sessions"). No FFDHE: a finite-field
 * exchange costs the server far more than the client, so an anonymous client could make it do costly work for
 * free. The end-to-end TLS inside a tunnel uses the same parameters (tunnel-tls.ts).
 */
export const TLS_PARAMS = {
  minVersion: 'TLSv1.3',
  maxVersion: 'TLSv1.3',
  ecdhCurve: 'X25519:P-256',
} as const;
