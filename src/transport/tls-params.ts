/**
 * TLS parameters of every CPNS connection (sessions, enrollment, tunnels): TLS 1.3 only, and only the
 * key-exchange groups X25519 and P-256 (issue #8 §3). No FFDHE: a finite-field exchange costs the server far more
 * than the client, so an anonymous client could make it do costly work for free.
 */
export const TLS_PARAMS = {
  minVersion: 'TLSv1.3',
  maxVersion: 'TLSv1.3',
  ecdhCurve: 'X25519:P-256',
} as const;
