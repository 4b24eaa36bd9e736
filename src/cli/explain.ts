/**
 * What a person at a terminal can do about a failed enrollment or connect: the SDK's typed error (its stable
 * code kept) re-said with the URL, the flag that sets it and the next step. Never a raw Node error text: the
 * SDK's cause stays out of the message.
 */
import { DaemonError } from './usage.js';

interface Coded {
  code?: unknown;
  field?: unknown;
}

const codeOf = (e: unknown): string | undefined => {
  const c = (e as Coded | null)?.code;
  return typeof c === 'string' ? c : undefined;
};
const fieldOf = (e: unknown): string | undefined => {
  const f = (e as Coded | null)?.field;
  return typeof f === 'string' ? f : undefined;
};

export interface EnrollContext {
  /** 'gw' (cpns gateway, at the server) or 'pne' (cpns pne, through a GW). */
  role: 'gw' | 'pne';
  enrollUrl: string;
  /** How the enrollment URL was chosen: `--enroll-url` or the default derived from --server / --gw. */
  urlFrom: string;
  caFile: string;
}

const TOKEN_REASON: Readonly<Record<string, string>> = {
  unknown: 'the enrollment token is unknown to the server (mistyped, or from another server)',
  used: 'the enrollment token was already used (each token enrolls once)',
  expired: 'the enrollment token has expired',
  wrong_role: 'the enrollment token is for the other role',
};

/** A failed first-start enrollment, explained (the error's own code kept); other errors unchanged. */
export function explainEnrollFailure(e: unknown, c: EnrollContext): unknown {
  const code = codeOf(e);
  const field = fieldOf(e);
  const at = `${c.enrollUrl} (${c.urlFrom})`;
  const peer = c.role === 'gw' ? 'CPNS Server' : 'PN GW';
  const newToken = `ask the operator for a new one: cpns admin token create --role ${c.role}`;
  switch (code) {
    case 'UNREACHABLE':
      return new DaemonError(
        code,
        `nothing answers at ${at}: is the ${peer} running, and is that its enrollment URL?`,
      );
    case 'TLS_REFUSED':
      if (field === 'caPem')
        return new DaemonError(
          code,
          `${at} presented a certificate not issued by the CA in --ca ${c.caFile}: use this CPNS Service's ca.pem (in the server's data directory)`,
        );
      return new DaemonError(code, `no secure session with ${at}: is it the ${peer}'s enrollment URL?`);
    case 'PEER_IDENTITY_MISMATCH':
    case 'BAD_IDENTITY':
      return new DaemonError(
        code,
        `${at} is not a ${peer}'s enrollment listener${c.role === 'pne' ? " (the server's? a PNE enrolls at its GW)" : ''}`,
      );
    case 'UPGRADE_REFUSED':
      return new DaemonError(
        code,
        `${at} answered, but is not a CPNS enrollment URL (wss://host:port/enroll)`,
      );
    case 'TIMEOUT':
      return new DaemonError(code, `no answer to the enrollment at ${at} in time: retry later`);
    case 'ENROLL_REFUSED': {
      const reason = field?.startsWith('token.') ? TOKEN_REASON[field.slice('token.'.length)] : undefined;
      if (reason) {
        const role = field === 'token.wrong_role' ? ` (not for a ${c.role})` : '';
        return new DaemonError(code, `${reason}${role}: ${newToken}`);
      }
      if (field === 'server')
        return new DaemonError(
          code,
          `the GW at ${at} is not connected to the CPNS Server right now: retry later`,
        );
      return new DaemonError(code, `enrollment refused at ${at}: ${newToken}`);
    }
    default:
      return e;
  }
}

/** A PNE's failed connect to its GW(s) (`--gw`), explained; other errors unchanged. */
export function explainConnectFailure(e: unknown, gwUrls: readonly string[]): unknown {
  const code = codeOf(e);
  const at = `${gwUrls.join(', ')} (--gw)`;
  switch (code) {
    case 'UNREACHABLE':
      return new DaemonError(
        code,
        `no PN GW answers at ${at}: is the GW running? (cpns pne listen waits for it)`,
      );
    case 'TLS_REFUSED':
      if (fieldOf(e) === 'caPem')
        return new DaemonError(
          code,
          `the GW at ${at} has a certificate not issued by this PNE's CA (another CPNS Service?)`,
        );
      return new DaemonError(
        code,
        `no secure session with the GW at ${at}: it refused this PNE's certificate, or cannot reach the CPNS Server`,
      );
    case 'PEER_IDENTITY_MISMATCH':
    case 'BAD_IDENTITY':
      return new DaemonError(code, `${at} is not a PN GW's session URL (the server's? an enrollment URL?)`);
    case 'UPGRADE_REFUSED':
    case 'UNEXPECTED_MESSAGE':
      return new DaemonError(code, `${at} answered, but is not a PN GW's session URL (wss://host:7450/cpns)`);
    case 'TIMEOUT':
      return new DaemonError(code, `the GW at ${at} did not answer in time: retry later`);
    default:
      return e;
  }
}
