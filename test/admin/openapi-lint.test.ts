/**
 * The OpenAPI document a running server serves at /openapi.json lints clean with Redocly CLI (the recommended
 * rules, `redocly.yaml` at the repository root): no error, no warning. Fetched over a real TLS connection from a
 * started server, written to a temporary file, linted by the real `redocly lint` (a devDependency, no network:
 * telemetry off). Both variants of the document: `/metrics` behind the token, and with `publicMetrics`.
 * Plus what the linter only warns about, made strict here: every operationId camelCase and unique.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Stack, startStack } from './fixture.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const REDOCLY = join(ROOT, 'node_modules', '@redocly', 'cli', 'bin', 'cli.js');
const dir = mkdtempSync(join(tmpdir(), 'cpns-openapi-'));

interface LintReport {
  totals: { errors: number; warnings: number; ignored: number };
  problems: { ruleId: string; message: string; location?: { pointer?: string }[] }[];
}

/** `redocly lint --format=json` of a document; the exit code and the parsed report. */
function lint(doc: unknown, name: string): { status: number | null; report: LintReport; stderr: string } {
  const file = join(dir, `${name}.json`);
  writeFileSync(file, JSON.stringify(doc, null, 2));
  const r = spawnSync(
    process.execPath,
    [REDOCLY, 'lint', file, '--config', join(ROOT, 'redocly.yaml'), '--format=json'],
    {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 60_000,
      env: {
        ...process.env,
        REDOCLY_TELEMETRY: 'off',
        REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true',
        NO_COLOR: '1',
      },
    },
  );
  let report: LintReport;
  try {
    report = JSON.parse(r.stdout) as LintReport;
  } catch {
    throw new Error(`redocly lint printed no JSON report (exit ${r.status}): ${r.stderr.slice(0, 2000)}`);
  }
  return { status: r.status, report, stderr: r.stderr };
}

const served = (s: Stack): Promise<Record<string, unknown>> =>
  new Promise((resolve, reject) => {
    get(`${s.url}/openapi.json`, { ca: s.caPem }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`/openapi.json: HTTP ${res.statusCode}`));
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      });
    }).on('error', reject);
  });

const problems = (r: LintReport) =>
  r.problems.map((p) => `${p.ruleId}: ${p.message} at ${p.location?.[0]?.pointer ?? '?'}`);

type Doc = { paths: Record<string, Record<string, { operationId?: string; responses: object }>> };

let stacks: Stack[] = [];
const docs: Record<string, Record<string, unknown>> = {};

beforeAll(async () => {
  stacks = [await startStack(), await startStack({ publicMetrics: true })];
  docs.default = await served(stacks[0]!);
  docs.publicMetrics = await served(stacks[1]!);
});

afterAll(async () => {
  for (const s of stacks) await s.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('the served OpenAPI document', () => {
  for (const variant of ['default', 'publicMetrics'] as const) {
    it(`lints clean with redocly (recommended rules, no warnings): ${variant}`, () => {
      const { status, report, stderr } = lint(docs[variant], variant);
      expect(problems(report)).toEqual([]);
      expect(report.totals).toEqual({ errors: 0, warnings: 0, ignored: 0 });
      expect(status, stderr).toBe(0);
    });
  }

  it('the linter does find problems (a document without operationIds, servers and license is refused)', () => {
    const bad = structuredClone(docs.default) as Doc & { servers?: unknown; info: { license?: unknown } };
    delete bad.servers;
    delete bad.info.license;
    for (const ops of Object.values(bad.paths)) for (const op of Object.values(ops)) delete op.operationId;
    const { status, report } = lint(bad, 'bad');
    const rules = new Set(report.problems.map((p) => p.ruleId));
    expect(rules).toContain('no-empty-servers');
    expect(rules).toContain('info-license');
    expect(rules).toContain('operation-operationId');
    expect(status).not.toBe(0);
  });

  it('every operation has a camelCase operationId, unique in the document', () => {
    const ids = Object.values((docs.default as Doc).paths).flatMap((ops) =>
      Object.values(ops).map((op) => op.operationId),
    );
    expect(ids.length).toBeGreaterThan(20);
    for (const id of ids) expect(id).toMatch(/^[a-z][a-zA-Z0-9]*$/);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('declares the error replies: 431 on every operation, 413/415 where a body is parsed, 503 where the store is read', () => {
    const paths = (docs.default as Doc).paths;
    for (const [path, ops] of Object.entries(paths)) {
      for (const [verb, op] of Object.entries(ops)) {
        const codes = Object.keys(op.responses);
        const where = `${verb.toUpperCase()} ${path}`;
        expect(codes, where).toContain('431');
        if (verb !== 'get') expect(codes, where).toEqual(expect.arrayContaining(['413', '415']));
        if (path.startsWith('/api/v1/') && path !== '/api/v1/events')
          expect(codes, where).toEqual(expect.arrayContaining(['401', '500', '503']));
      }
    }
    expect(Object.keys(paths['/readyz']!.get!.responses)).toContain('503');
  });
});
