/**
 * `cpns admin api-token`: named admin tokens with scopes from the CLI (docs/operator.md "Admin tokens"). The
 * operator on the server's machine hands out a scoped token; used from elsewhere it can do exactly its scope, is
 * named in the audit log, and stops working once revoked. Real processes.
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CliProcesses, readJson } from './cli-process.js';

const root = mkdtempSync(join(tmpdir(), 'cpns-api-token-'));
const cli = new CliProcesses();
const S = join(root, 'server');
const elsewhere = join(root, 'ops');
let remote: string[] = [];

afterAll(() => {
  cli.killAll();
  rmSync(root, { recursive: true, force: true });
});

beforeAll(async () => {
  cli.daemon(['server', '--data-dir', S, '--port', '0', '--enroll-port', '0', '--admin-port', '0']);
  const { adminUrl } = await cli.until(() => readJson<{ adminUrl: string }>(join(S, 'server.json')));
  mkdirSync(elsewhere, { mode: 0o700 });
  copyFileSync(join(S, 'ca.pem'), join(elsewhere, 'ca.pem'));
  remote = ['--url', adminUrl, '--ca', 'ca.pem', '--token-file', 'ops.token'];
}, 90_000);

describe('cpns admin api-token', () => {
  it('create (root, on the server machine) -> use with its scope elsewhere -> audit names it -> revoke', async () => {
    const token = await cli.ok([
      'admin',
      'api-token',
      'create',
      '--name',
      'ops',
      '--scope',
      'operator',
      '--data-dir',
      S,
    ]);
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    writeFileSync(join(elsewhere, 'ops.token'), `${token}\n`, { mode: 0o600 });

    const sgId = await cli.ok(['admin', 'sg', 'create', '--name', 'by-ops', '--open', '--id', ...remote], {
      cwd: elsewhere,
    });
    expect(sgId).toMatch(/^[0-9a-f-]{36}$/);
    // operator scope: no token management
    const denied = await cli.run(['admin', 'api-token', 'create', '--name', 'more', ...remote], {
      cwd: elsewhere,
    });
    expect(denied.code).toBe(1);
    expect(denied.stderr).toContain('INSUFFICIENT_SCOPE');
    expect(denied.stderr).not.toContain(token);

    const audit = JSON.parse(await cli.ok(['admin', 'audit', '--sg', sgId, '--json', '--data-dir', S])) as {
      entries: { actor: string; action: string }[];
    };
    expect(new Set(audit.entries.map((e) => e.actor))).toEqual(new Set(['operator:ops']));

    const list = JSON.parse(await cli.ok(['admin', 'api-token', 'list', '--json', '--data-dir', S])) as {
      name: string;
      scope: string;
      revokedAt: number | null;
    }[];
    expect(list).toEqual([expect.objectContaining({ name: 'ops', scope: 'operator', revokedAt: null })]);
    expect(JSON.stringify(list)).not.toContain(token);

    await cli.ok(['admin', 'api-token', 'revoke', 'ops', '--data-dir', S]);
    const after = await cli.run(['admin', 'sg', 'list', ...remote], { cwd: elsewhere });
    expect(after.code).toBe(1);
    expect(after.stderr).toContain('UNAUTHORIZED');
  }, 120_000);

  it('usage errors exit 2', async () => {
    const noName = await cli.run(['admin', 'api-token', 'create', '--data-dir', S]);
    expect(noName.code).toBe(2);
    expect(noName.stderr).toContain('--name');
    const badScope = await cli.run([
      'admin',
      'api-token',
      'create',
      '--name',
      'x',
      '--scope',
      'root',
      '--data-dir',
      S,
    ]);
    expect(badScope.code).toBe(2);
  }, 60_000);
});
