/**
 * `--help` / `-h` on every command print that command's help and start nothing (exit 0); `--version` prints the
 * package's version; usage errors exit 2 with a message, before anything runs. Real `cpns` processes.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const bin = fileURLToPath(new URL('../../bin/cpns.mjs', import.meta.url));
const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

function cpns(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { timeout: 90_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * Runs the cases a few at a time: each is a whole `cpns` start (tsx compiling the CLI), and eleven at once on a
 * loaded 2-core machine took longer than any sensible timeout.
 */
async function each<T, R>(items: readonly T[], f: (t: T) => Promise<R>, width = 3): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await f(items[i] as T);
      }
    }),
  );
  return out;
}

const HELP: [string[], string][] = [
  [['--help'], 'usage: cpns <command>'],
  [['-h'], 'usage: cpns <command>'],
  [['demo', '--help'], 'usage: cpns demo'],
  [['demo', 'core', '-h'], 'usage: cpns demo core'],
  [['server', '--help'], 'usage: cpns server'],
  [['gateway', '-h'], 'usage: cpns gateway'],
  [['pne', 'group', 'create', '--help'], 'usage: cpns pne'],
  [['admin', '--help'], 'usage: cpns admin'],
  [['bench', 'core', '--help'], 'usage: cpns bench core'],
  [['bench', 'rekey', '-h'], 'usage: cpns bench rekey'],
  [['bench', 'relay', '--help'], 'usage: cpns bench relay'],
  [['bench', 'memory', '-h'], 'usage: cpns bench memory'],
  [['help', 'server'], 'usage: cpns server'],
];

describe('cpns --help', () => {
  it('every command answers --help / -h with its own help, exit 0, and starts nothing', async () => {
    const results = await each(HELP, ([args]) => cpns(...args));
    results.forEach((r, i) => {
      const [args, head] = HELP[i] ?? [[], ''];
      expect({ args, code: r.code, head: r.stdout.split('\n')[0] }).toEqual({
        args,
        code: 0,
        head: expect.stringContaining(head),
      });
      // Nothing ran: no demo narration, no benchmark table, no daemon log line.
      expect(r.stdout).not.toMatch(/\[operator\]|pairs\/s|ready/);
      expect(r.stderr).toBe('');
    });
  }, 300_000);

  it('gateway --help documents its fixed default ports and --host', async () => {
    const r = await cpns('gateway', '--help');
    expect(r.stdout).toMatch(/--host <addr>.*default 127\.0\.0\.1/);
    expect(r.stdout).toMatch(/--port <n>.*default 7450/);
    expect(r.stdout).toMatch(/--enroll-port <n>.*default 7451/);
  }, 30_000);

  it('--version prints the package version', async () => {
    const r = await cpns('--version');
    expect(r).toMatchObject({ code: 0, stdout: `cpns ${pkg.version}\n` });
  }, 100_000);

  it('usage errors exit 2 with a message and run nothing', async () => {
    const cases = [
      ['nosuch'],
      ['demo', '--nosuch'],
      ['bench', 'core', '--rounds', '1'],
      ['bench', 'rekey', '--members', 'many'],
      ['bench', 'rekey', '--workers', '0', '--cpu-prof', '/tmp/cpns-never-written'],
      ['bench', 'rekey', '--workers', '2', '--split-roles'],
      ['bench', 'relay', '--members', '0'],
      ['bench', 'memory', '--pnes', 'x'],
      ['bench', 'nosuch'],
      ['server', '--nosuch'],
      ['help', 'nosuch'],
    ];
    const results = await each(cases, (a) => cpns(...a));
    results.forEach((r, i) => {
      expect({ args: cases[i], code: r.code }).toEqual({ args: cases[i], code: 2 });
      expect(r.stderr.length).toBeGreaterThan(0);
      expect(r.stdout).toBe('');
    });
  }, 300_000);
});
