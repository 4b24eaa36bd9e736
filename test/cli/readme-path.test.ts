/**
 * The README's "for real" path, run exactly as written: the code block between `<!-- readme-path:start -->` and
 * `<!-- readme-path:end -->` goes to bash in a fresh temporary directory (as if pasted into a shell with job
 * control), `npx cpns` being this checkout's CLI. It must start a server, a GW, enroll a PNE, create a Service
 * Group with it, send a message, show the status and stop everything, so the README cannot drift from the CLI.
 * Its ports are the documented defaults (7443-7445, 7450-7451): they must be free.
 */
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bin } from './cli-process.js';

const root = mkdtempSync(join(tmpdir(), 'cpns-readme-'));
const pidsFile = join(root, 'pids');

afterAll(() => {
  // whatever the block left running (it should have stopped everything itself)
  const pids = existsSync(pidsFile) ? readFileSync(pidsFile, 'utf8').split('\n').filter(Boolean) : [];
  for (const p of pids) {
    try {
      process.kill(Number(p), 'SIGKILL');
    } catch {}
  }
  rmSync(root, { recursive: true, force: true });
});

/** The marked block of README.md (the shell code inside its fence). */
function readmePath(readme: string): string {
  const m = /<!-- readme-path:start -->\n```sh\n([\s\S]*?)```\n<!-- readme-path:end -->/.exec(readme);
  if (!m?.[1])
    throw new Error(
      'README.md has no <!-- readme-path:start --> ```sh ... ``` <!-- readme-path:end --> block',
    );
  return m[1];
}

const portFree = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });

describe('README "for real" path', () => {
  it('works when pasted into a shell, in a fresh directory', async () => {
    const block = readmePath(readFileSync(new URL('../../README.md', import.meta.url), 'utf8'));
    const busy = [];
    for (const p of [7443, 7444, 7445, 7450, 7451]) if (!(await portFree(p))) busy.push(p);
    expect(busy, `the README's ports must be free: ${busy.join(', ')} in use`).toEqual([]);

    // `npx cpns ...` is this checkout's CLI (npx in a directory without the package would ask the registry);
    // each process notes its PID, so none outlives the test
    const shims = join(root, 'bin');
    const work = join(root, 'work');
    for (const d of [shims, work]) rmSync(d, { recursive: true, force: true });
    for (const d of [shims, work]) mkdirSync(d);
    const npx = join(shims, 'npx');
    writeFileSync(
      npx,
      [
        '#!/usr/bin/env bash',
        'if [ "$1" != cpns ]; then echo "README test: unexpected npx $*" >&2; exit 127; fi',
        'shift',
        `echo $$ >> ${JSON.stringify(pidsFile)}`,
        `exec ${JSON.stringify(process.execPath)} ${JSON.stringify(bin)} "$@"`,
        '',
      ].join('\n'),
    );
    chmodSync(npx, 0o755);
    const env: NodeJS.ProcessEnv = { PATH: `${shims}:${process.env.PATH ?? ''}`, HOME: root };
    for (const k of ['LANG', 'TERM']) if (process.env[k]) env[k] = process.env[k];

    // job control on (set -m) as in an interactive shell: `kill %job` stops a job's whole process group
    const script = `set -euo pipefail\nset -m\n${block}\nwait\n`;
    const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>(
      (resolve, reject) => {
        const child = spawn('bash', ['-c', script], { cwd: work, env, stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d: Buffer) => {
          stdout += d.toString();
        });
        child.stderr.on('data', (d: Buffer) => {
          stderr += d.toString();
        });
        const timer = setTimeout(() => child.kill('SIGKILL'), 240_000);
        child.on('error', reject);
        child.on('close', (code) => {
          clearTimeout(timer);
          resolve({ code, stdout, stderr });
        });
      },
    );
    const logs = ['server.log', 'gateway.log']
      .map((f) => join(work, '.cpns', f))
      .filter(existsSync)
      .map((f) => `--- ${f}\n${readFileSync(f, 'utf8').slice(-3000)}`)
      .join('\n');
    const report = `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr.slice(-4000)}\n${logs}`;
    expect(r.code, report).toBe(0);
    const pne = /^PNE: (urn:cpns:pne:[0-9a-f-]{36})$/m.exec(r.stdout)?.[1];
    const sg = /^Service Group: ([0-9a-f-]{36})$/m.exec(r.stdout)?.[1];
    expect(pne, report).toBeDefined();
    expect(sg, report).toBeDefined();
    expect(r.stdout).toContain(`{"event":"sent","sgId":"${sg}"`);
    // the status table: the PNE is a member, in the GW's PN, and has the current epoch
    expect(r.stdout).toMatch(/^Service Group [0-9a-f-]{36}: epoch \d+/m);
    expect(r.stdout).toMatch(/pneId\s+pn\s+online\s+ackedEpoch\s+method\s+lag/);
    expect(r.stdout).toContain(pne);
    expect(r.stdout).toMatch(/urn:cpns:gw:/);
    // both daemons stopped gracefully (their data directory locks are gone)
    for (const d of ['server', 'gateway', 'pne'])
      expect(existsSync(join(work, '.cpns', d, 'cpns.lock')), `${d} lock\n${report}`).toBe(false);
  }, 300_000);
});
