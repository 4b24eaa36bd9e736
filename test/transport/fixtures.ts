import { randomUUID } from 'node:crypto';
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
