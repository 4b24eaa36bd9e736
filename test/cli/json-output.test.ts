/**
 * The `--json` output of the main `cpns admin` commands is a stable interface for scripts (docs/cli.md): this
 * pins its key sets. Adding a key is a documented change (update docs/cli.md and this list); removing or
 * renaming one breaks scripts. Real processes: a server, a GW, a PNE.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CliProcesses, readJson } from './cli-process.js';

const root = mkdtempSync(join(tmpdir(), 'cpns-json-'));
const cli = new CliProcesses();

afterAll(() => {
  cli.killAll();
  rmSync(root, { recursive: true, force: true });
});

type Json = Record<string, unknown>;
const keys = (o: unknown): string[] => Object.keys(o as Json).sort();
const first = (a: unknown): Json => {
  expect(Array.isArray(a) && a.length > 0, JSON.stringify(a)).toBe(true);
  return (a as Json[])[0] as Json;
};

/** The pinned key sets (docs/cli.md "--json"). */
const PINNED = {
  'token create': ['expiresAt', 'label', 'role', 'token'],
  'sg create': [
    'createdAt',
    'currentEpoch',
    'deliveryPolicy',
    'epoch',
    'joinPolicy',
    'memberCount',
    'members',
    'name',
    'ownerId',
    'rekeyIntervalSec',
    'sgId',
    'sourceAuth',
    'suite',
    'updateOnJoin',
  ],
  'sg list[]': [
    'createdAt',
    'currentEpoch',
    'deliveryPolicy',
    'joinPolicy',
    'memberCount',
    'members',
    'name',
    'ownerId',
    'rekeyIntervalSec',
    'sgId',
    'sourceAuth',
    'suite',
    'updateOnJoin',
  ],
  'sg status': ['current', 'currentEpoch', 'epochs', 'gateways', 'lagging', 'members', 'sgId'],
  'sg status .members[]': ['ackedAt', 'ackedEpoch', 'gwId', 'joinedAt', 'lag', 'method', 'online', 'pneId'],
  'sg status .gateways[]': ['ackedAt', 'ackedEpoch', 'gwId', 'lag', 'online'],
  'pns[]': ['gwId', 'lastSeen', 'online', 'pnes', 'registeredAt'],
  'pns[] .pnes[]': ['gwId', 'lastSeen', 'media', 'online', 'pneId'],
  'identities[]': ['certSerial', 'createdAt', 'id', 'revokedAt', 'role'],
  'sg rekey': ['epoch', 'sgId'],
  audit: ['entries', 'nextAfterSeq'],
  'audit .entries[]': ['action', 'actor', 'at', 'detail', 'epoch', 'reason', 'seq', 'sgId', 'subject'],
  'sg add / remove / delete': ['ok'],
  revoke: ['certSerial', 'createdAt', 'id', 'revokedAt', 'role'],
};

describe('cpns admin --json', () => {
  it('keeps the key sets of its output', async () => {
    const S = join(root, 'server');
    cli.daemon(['server', '--data-dir', S, '--port', '0', '--enroll-port', '0', '--admin-port', '0']);
    const info = await cli.until(() => readJson<{ url: string; enrollUrl: string }>(join(S, 'server.json')));
    const ca = join(S, 'ca.pem');
    const admin = async (...a: string[]) =>
      JSON.parse(await cli.ok(['admin', ...a, '--json', '--data-dir', S]));
    const got: Record<string, string[]> = {};

    const gwToken = await admin('token', 'create', '--role', 'gw');
    got['token create'] = keys(gwToken);
    const G = join(root, 'gw');
    cli.daemon(
      [
        ...['gateway', '--data-dir', G, '--server', info.url, '--enroll-url', info.enrollUrl, '--ca', ca],
        ...['--port', '0', '--enroll-port', '0'],
      ],
      { env: { CPNS_TOKEN: gwToken.token } },
    );
    const gw = await cli.until(() => readJson<{ url: string; enrollUrl: string }>(join(G, 'gateway.json')));
    const P = join(root, 'pne');
    const pne = await cli.ok(
      ['pne', 'enroll', '--data-dir', P, '--gw', gw.url, '--enroll-url', gw.enrollUrl, '--ca', ca],
      { env: { CPNS_TOKEN: (await admin('token', 'create', '--role', 'pne')).token } },
    );

    const created = await admin('sg', 'create', '--name', 'json', '--member', pne);
    got['sg create'] = keys(created);
    await cli.ok(['pne', 'send', '--sg', created.sgId, '--data', 'x', '--data-dir', P]);
    got['sg list[]'] = keys(first(await admin('sg', 'list')));
    const status = await admin('sg', 'status', created.sgId);
    got['sg status'] = keys(status);
    got['sg status .members[]'] = keys(first(status.members));
    got['sg status .gateways[]'] = keys(first(status.gateways));
    const pns = await admin('pns');
    got['pns[]'] = keys(first(pns));
    got['pns[] .pnes[]'] = keys(first(first(pns).pnes));
    got['identities[]'] = keys(first(await admin('identities')));
    got['sg rekey'] = keys(await admin('sg', 'rekey', created.sgId));
    const audit = await admin('audit', '--sg', created.sgId);
    got.audit = keys(audit);
    got['audit .entries[]'] = keys(first(audit.entries));
    got['sg add / remove / delete'] = keys(await admin('sg', 'remove', created.sgId, pne));
    got.revoke = keys(await admin('revoke', pne));

    expect(got).toEqual(PINNED);
    // --id: just the id, for scripts without jq
    const id = await cli.ok(['admin', 'sg', 'create', '--name', 'ids', '--id', '--data-dir', S]);
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect((await cli.ok(['admin', 'sg', 'list', '--id', '--data-dir', S])).split('\n')).toContain(id);
  }, 180_000);
});
