/**
 * Real `cpns` processes for the CLI tests: one-shot commands (exit code, stdout, stderr) and daemons (their
 * stdout lines and logs kept, killed at the end). Each test file makes its own `CliProcesses` and calls
 * `killAll()` in afterAll.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const bin = fileURLToPath(new URL('../../bin/cpns.mjs', import.meta.url));

export interface RunOptions {
  env?: Record<string, string | undefined>;
  input?: string;
  cwd?: string;
  timeoutMs?: number;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export type Daemon = ChildProcess & { lines: string[]; logs: string[] };

/** undefined while the file is absent or still being written. */
export function readJson<T = Record<string, string>>(path: string): T | undefined {
  try {
    return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as T) : undefined;
  } catch {
    return undefined;
  }
}

export function exited(c: ChildProcess): Promise<number | null> {
  return new Promise((r) => (c.exitCode !== null ? r(c.exitCode) : c.once('exit', (code) => r(code))));
}

export class CliProcesses {
  readonly #children: ChildProcess[] = [];
  readonly #logs: string[] = [];
  readonly #env: Record<string, string | undefined>;

  constructor(env: Record<string, string | undefined> = {}) {
    // Never the real ~/.local/share/cpns: a command without --data-dir looks in a directory of this run (created
    // only if a test starts a daemon there).
    const xdg = join(tmpdir(), `cpns-test-xdg-${process.pid}`);
    // Nor the CPNS_* settings of the shell that runs the tests: each test gives the ones it means.
    const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('CPNS_')));
    this.#env = { ...inherited, XDG_DATA_HOME: xdg, CPNS_LOG_LEVEL: 'warn', ...env };
  }

  #environment(extra?: Record<string, string | undefined>): NodeJS.ProcessEnv {
    const e: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries({ ...this.#env, ...extra })) if (v !== undefined) e[k] = v;
    return e;
  }

  run(args: string[], o: RunOptions = {}): Promise<RunResult> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [bin, ...args], {
        env: this.#environment(o.env),
        cwd: o.cwd,
        stdio: ['pipe', 'pipe', 'pipe'],
        timeout: o.timeoutMs ?? 60_000,
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
      });
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
      });
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout: stdout.trim(), stderr }));
      child.stdin.end(o.input ?? '');
    });
  }

  /** A command that must succeed: its stdout. */
  async ok(args: string[], o: RunOptions = {}): Promise<string> {
    const r = await this.run(args, o);
    if (r.code !== 0) throw new Error(`cpns ${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
    return r.stdout;
  }

  daemon(args: string[], o: Omit<RunOptions, 'input' | 'timeoutMs'> = {}): Daemon {
    const child = spawn(process.execPath, [bin, ...args], {
      env: this.#environment(o.env),
      cwd: o.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines: string[] = [];
    const logs: string[] = [];
    child.stdout?.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)));
    child.stderr?.on('data', (d: Buffer) => {
      logs.push(d.toString());
      this.#logs.push(`[${args[0]}] ${d.toString()}`);
      if (this.#logs.length > 200) this.#logs.shift();
    });
    child.once('exit', (code) => this.#logs.push(`[${args[0]}] exited with ${code}`));
    this.#children.push(child);
    return Object.assign(child, { lines, logs });
  }

  /** Polls `f` until it returns something (not undefined/false); the daemons' logs on a timeout. */
  async until<T>(f: () => T | undefined | false, ms = 60_000): Promise<T> {
    const end = Date.now() + ms;
    for (;;) {
      const v = f();
      if (v !== undefined && v !== false) return v;
      if (Date.now() > end) throw new Error(`timed out; daemon logs:\n${this.#logs.slice(-20).join('')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  killAll(): void {
    for (const c of this.#children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
}
