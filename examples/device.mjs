#!/usr/bin/env node
// A complete CPNS device (PNE) on the `cpns/pne` SDK: it enrolls once with a one-time token, keeps its
// credentials in its data directory, stays attached to one of its PN GWs, joins a Service Group, sends each
// line of standard input to it and prints what it receives. Every event is one JSON line on standard output.
// docs/sdk.md explains each step. Run it with `node device.mjs` and this environment:
//
//   CPNS_GW_URL      the GWs' session URLs, comma-separated (wss://host:port,...)
//   CPNS_SG          the Service Group to join
//   CPNS_DATA_DIR    the CPNS data root: credentials in <root>/device (default ~/.local/share/cpns)
//   first start only (enrollment):
//   CPNS_ENROLL_URL  a GW's enrollment URL (wss://host:port/enroll)
//   CPNS_CA          the CPNS CA certificate (PEM file)
//   CPNS_TOKEN_FILE  a file holding the one-time token (or CPNS_TOKEN: the token itself)
//
// Standard input: each line is sent to the SG; `/leave` leaves the SG and exits. End of input, SIGINT or
// SIGTERM: close (still a member). Exit code 0 when done, 1 when the device cannot go on (reason printed).
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { createInterface } from 'node:readline';
import { PneClient } from 'cpns/pne';

const env = process.env;
const print = (event) => process.stdout.write(`${JSON.stringify(event)}\n`);

// What a device can do about the errors it may get before it is up (docs/sdk.md "Error codes").
const HINTS = {
  ENROLL_REFUSED: 'the token is unknown, used, expired or not for a PNE: ask the operator for a new one',
  UNREACHABLE: 'nothing answers at that URL: is the GW running, is the URL right?',
  TLS_REFUSED: 'no GW answered with a certificate of this CA: check the URL and CPNS_CA',
  PEER_IDENTITY_MISMATCH: 'that URL is not a PN GW (the server itself?): use a GW URL',
  REVOKED: 'this device was revoked: remove its credentials.json and enroll again with a new token',
  ROLE_REFUSED: 'these credentials are not a PNE identity',
};

function fail(what, e) {
  const code = e?.code ?? 'ERROR';
  print({ event: 'error', what, code, message: e?.message, hint: HINTS[code] });
  process.exit(1);
}

function need(name) {
  const v = env[name];
  if (!v) fail('configuration', { code: 'USAGE', message: `${name} is not set` });
  return v;
}

// ---- Credentials: certificate, private key and CA in <dataDir>/credentials.json (dir 0700, file 0600) -----
// <dataDir> is <root>/device; <root> as the cpns CLI has it: CPNS_DATA_DIR, else the XDG data directory.
const xdg =
  env.XDG_DATA_HOME && isAbsolute(env.XDG_DATA_HOME) ? env.XDG_DATA_HOME : join(homedir(), '.local/share');
const dataDir = join(env.CPNS_DATA_DIR || join(xdg, 'cpns'), 'device');
const credentialsFile = join(dataDir, 'credentials.json');

function loadCredentials() {
  if (!existsSync(credentialsFile)) return undefined;
  if ((statSync(credentialsFile).mode & 0o077) !== 0)
    fail('credentials', {
      code: 'PERMISSIONS',
      message: `${credentialsFile} is readable by others: chmod 600`,
    });
  return JSON.parse(readFileSync(credentialsFile, 'utf8'));
}

function saveCredentials(credentials) {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const tmp = `${credentialsFile}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(credentials, null, 2)}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600); // whatever the umask
  renameSync(tmp, credentialsFile); // atomic: never half a file
}

async function enroll() {
  const token = (env.CPNS_TOKEN_FILE ? readFileSync(env.CPNS_TOKEN_FILE, 'utf8') : need('CPNS_TOKEN')).trim();
  const credentials = await PneClient.enroll({
    enrollUrl: need('CPNS_ENROLL_URL'),
    caPem: readFileSync(need('CPNS_CA'), 'utf8'),
    token,
  });
  saveCredentials(credentials);
  print({ event: 'enrolled', identity: credentials.identity });
  return credentials;
}

const gwUrls = need('CPNS_GW_URL').split(',').filter(Boolean);
const sgId = need('CPNS_SG');
const credentials = loadCredentials() ?? (await enroll().catch((e) => fail('enroll', e)));

// ---- Connect: waits for a GW (retrying with backoff), then fails over between the GWs on its own ----------
const pne = await PneClient.connect({ gwUrls, credentials, waitForGw: true }).catch((e) =>
  fail('connect', e),
);
print({ event: 'attached', identity: pne.identity, gwUrl: pne.gwUrl });

pne.on('disconnected', (code) => print({ event: 'disconnected', code }));
pne.on('reconnecting', ({ attempt, delayMs, gwUrl }) =>
  print({ event: 'reconnecting', attempt, delayMs, gwUrl }),
);
pne.on('reconnected', () => print({ event: 'attached', identity: pne.identity, gwUrl: pne.gwUrl }));
pne.on('key', ({ sgId, epoch, reason, method }) => print({ event: 'key', sgId, epoch, reason, method }));
pne.on('message', ({ sgId, sender, epoch, plaintext }) =>
  print({ event: 'message', sgId, sender, epoch, text: plaintext.toString('utf8') }),
);
pne.on('drop', ({ code, sgId }) => print({ event: 'drop', code, sgId }));
pne.on('removed', ({ sgId }) => print({ event: 'removed', sgId }));
pne.on('group-deleted', ({ sgId }) => print({ event: 'group-deleted', sgId }));
pne.on('revoked', () => fail('session', { code: 'REVOKED', message: 'the operator revoked this device' }));
pne.on('refused', (code) => fail('session', { code, message: 'the GW refuses this identity' }));

// ---- Join the Service Group (an operator may have made this device a member already) ----------------------
try {
  await pne.joinGroup(sgId);
} catch (e) {
  if (e.code !== 'ALREADY_MEMBER') fail('join', e);
  await pne.waitForKey(sgId).catch((e2) => fail('join', e2));
}
print({ event: 'joined', sgId, epoch: pne.currentEpoch(sgId) });

// ---- Send each line of standard input; stop cleanly -------------------------------------------------------
let closing = false;
async function stop(leave) {
  if (closing) return;
  closing = true;
  if (leave) await pne.leaveGroup(sgId).catch((e) => print({ event: 'error', what: 'leave', code: e.code }));
  await pne.close();
  print({ event: 'closed', left: leave });
  process.exit(0);
}
process.once('SIGINT', () => stop(false));
process.once('SIGTERM', () => stop(false));

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  if (line === '/leave') return void stop(true);
  try {
    pne.send(sgId, line);
    print({ event: 'sent', sgId, epoch: pne.currentEpoch(sgId), text: line });
  } catch (e) {
    // UNEXPECTED_MESSAGE: not attached right now (reconnecting); UNKNOWN_GROUP: no key of this SG (removed).
    print({ event: 'not-sent', code: e.code, text: line });
  }
});
lines.on('close', () => stop(false));
