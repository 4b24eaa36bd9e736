import { spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  DataDirInUseError,
  holderAlive,
  LOCK_FILE,
  lockDataDir,
  processStartTime,
} from '../../src/cli/datadir-lock.js';

const root = mkdtempSync(join(tmpdir(), 'cpns-lock-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const dir = () => join(root, `d${n++}`);
const holder = (d: string) => JSON.parse(readFileSync(join(d, LOCK_FILE), 'utf8'));

/** The PID of a process that has exited (its PID is free). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
  return Number(r.stdout.toString());
}

describe('data directory lock', () => {
  it('creates the directory and a lock file naming this process; release removes it', () => {
    const d = dir();
    const lock = lockDataDir(d, 'server');
    expect(holder(d)).toMatchObject({ pid: process.pid, role: 'server' });
    if (existsSync('/proc/self/stat')) expect(holder(d).startTime).toBe(processStartTime(process.pid));
    // a second lock of the same directory is refused, in this process too
    expect(() => lockDataDir(d, 'server')).toThrow(DataDirInUseError);
    lock.release();
    expect(existsSync(join(d, LOCK_FILE))).toBe(false);
    lockDataDir(d).release();
  });

  it('refuses a directory held by a live process, naming the directory and the PID', async () => {
    const d = dir();
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    try {
      const pid = child.pid as number;
      lockDataDir(d).release(); // creates d
      writeFileSync(
        join(d, LOCK_FILE),
        JSON.stringify({ pid, startTime: processStartTime(pid), role: 'gateway', since: Date.now() }),
      );
      let err: unknown;
      try {
        lockDataDir(d, 'gateway');
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(DataDirInUseError);
      expect((err as Error).message).toContain(`data directory ${d} is in use by cpns gateway (PID ${pid}`);
      expect((err as DataDirInUseError).code).toBe('DATA_DIR_IN_USE');
      expect(holder(d).pid).toBe(pid); // left alone
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('takes over a stale lock: dead PID, reused PID (other start time), garbage left by a crash', () => {
    const d = dir();
    lockDataDir(d).release();
    const stale = [
      { pid: deadPid(), role: 'server' },
      // PID 1 is alive but did not start when this lock says its holder did
      ...(existsSync('/proc/1/stat') ? [{ pid: 1, startTime: '1', role: 'server' }] : []),
      // this very PID, written by an earlier incarnation (e.g. PID 1 in a restarted container)
      { pid: process.pid, role: 'server' },
    ];
    for (const h of stale) {
      expect(holderAlive(h)).toBe(false);
      writeFileSync(join(d, LOCK_FILE), JSON.stringify(h));
      const lock = lockDataDir(d, 'server');
      expect(holder(d).pid).toBe(process.pid);
      lock.release();
    }
    // half-written lock file: refused while fresh (its writer may be starting), taken over once old
    writeFileSync(join(d, LOCK_FILE), '');
    expect(() => lockDataDir(d)).toThrow(/is being locked by another cpns process/);
    const old = (Date.now() - 60_000) / 1000;
    utimesSync(join(d, LOCK_FILE), old, old);
    lockDataDir(d).release();
    expect(readdirSync(d)).toEqual([]); // no leftovers
  });

  it('release never removes a lock that is no longer ours', () => {
    const d = dir();
    const lock = lockDataDir(d);
    const other = JSON.stringify({ pid: 1, role: 'server' });
    writeFileSync(join(d, LOCK_FILE), other);
    lock.release();
    expect(readFileSync(join(d, LOCK_FILE), 'utf8')).toBe(other);
  });
});
