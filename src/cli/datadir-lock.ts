import { randomBytes } from 'node:crypto';
import {
  closeSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { CodedError } from '../core/errors.js';

/**
 * One process per data directory: `<dataDir>/cpns.lock`, created with O_EXCL (`open(..., 'wx')`), holds the PID of
 * its holder, the holder's start time (from /proc/<pid>/stat, so a reused PID is not mistaken for the holder) and
 * the boot id. A lock whose holder is gone (crash, kill -9, reboot) is stale and taken over; the lock file is
 * removed on exit. Node has no flock(2): this is the portable equivalent.
 */
export const LOCK_FILE = 'cpns.lock';

export interface LockHolder {
  pid: number;
  /** /proc/<pid>/stat field 22 (clock ticks after boot), when the OS exposes it. */
  startTime?: string;
  bootId?: string;
  /** The command holding it (server, gateway, pne listen...). */
  role?: string;
  /** ms since the epoch. */
  since?: number;
  /** Random tag: tells this process's lock file from any other one. */
  nonce?: string;
}

export class DataDirInUseError extends CodedError<'DATA_DIR_IN_USE'> {
  readonly family = 'cli';

  constructor(
    readonly dataDir: string,
    readonly holder: LockHolder,
  ) {
    const what = holder.role ? `cpns ${holder.role}` : 'another cpns process';
    const since = holder.since ? `, since ${new Date(holder.since).toISOString()}` : '';
    super(
      'DATA_DIR_IN_USE',
      holder.pid === 0
        ? `data directory ${dataDir} is being locked by another cpns process that is starting (lock file ${join(dataDir, LOCK_FILE)})`
        : `data directory ${dataDir} is in use by ${what} (PID ${holder.pid}${since}); ` +
            `stop that process first (lock file ${join(dataDir, LOCK_FILE)})`,
    );
    this.name = 'DataDirInUseError';
  }
}

export interface DataDirLock {
  readonly dataDir: string;
  readonly path: string;
  /** Removes the lock file if it is still ours. Idempotent; also runs on process exit. */
  release(): void;
}

/** Locks held by this process (a second lock of the same directory in one process is refused too). */
const held = new Map<string, DataDirLock>();

function readOrUndefined(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** Start time of a process (/proc/<pid>/stat field 22), undefined where /proc is not available. */
export function processStartTime(pid: number): string | undefined {
  const stat = readOrUndefined(`/proc/${pid}/stat`);
  if (!stat) return undefined;
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so count from the last ')'.
  const fields = stat
    .slice(stat.lastIndexOf(')') + 1)
    .trim()
    .split(/\s+/);
  return fields[19]; // field 3 (state) is fields[0]; field 22 (starttime) is fields[19]
}

function bootId(): string | undefined {
  return readOrUndefined('/proc/sys/kernel/random/boot_id')?.trim() || undefined;
}

function parseHolder(text: string | undefined): LockHolder | undefined {
  if (!text) return undefined;
  try {
    const v = JSON.parse(text) as LockHolder;
    return Number.isSafeInteger(v.pid) && v.pid > 0 ? v : undefined;
  } catch {
    return undefined;
  }
}

/** Is the process that wrote `h` still running? */
export function holderAlive(h: LockHolder): boolean {
  if (h.bootId && bootId() && h.bootId !== bootId()) return false; // written before a reboot
  if (h.pid === process.pid) return false; // an earlier incarnation with our PID (e.g. PID 1 in a container)
  try {
    process.kill(h.pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false; // ESRCH: no such process
  }
  // The PID exists (or belongs to another user): it is the holder unless it started at another time (PID reuse).
  if (h.startTime) {
    const now = processStartTime(h.pid);
    if (now !== undefined && now !== h.startTime) return false;
  }
  return true;
}

/** A lock file being written right now (open(wx) done, content not yet) is given this long before it is stale. */
const PARTIAL_GRACE_MS = 2000;

/**
 * Locks `dataDir` (created 0700 if missing) for this process, before anything else in it is opened or written.
 * Throws DataDirInUseError when a live process holds it; takes over a stale lock.
 */
export function lockDataDir(dataDir: string, role?: string): DataDirLock {
  const dir = resolve(dataDir);
  const path = join(dir, LOCK_FILE);
  const mine = held.get(path);
  if (mine) throw new DataDirInUseError(dataDir, { pid: process.pid, role });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const me: LockHolder = {
    pid: process.pid,
    startTime: processStartTime(process.pid),
    bootId: bootId(),
    role,
    since: Date.now(),
    nonce: randomBytes(12).toString('hex'),
  };
  const content = `${JSON.stringify(me)}\n`;
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      try {
        writeSync(fd, content);
      } finally {
        closeSync(fd);
      }
      return register(dataDir, path, content);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const text = readOrUndefined(path);
    if (text === undefined) continue; // removed meanwhile: try again
    const holder = parseHolder(text);
    if (holder && holderAlive(holder)) throw new DataDirInUseError(dataDir, holder);
    if (!holder) {
      // Unreadable content: a process between open(wx) and write, or one that crashed right there.
      let age = 0;
      try {
        age = Date.now() - statSync(path).mtimeMs;
      } catch {
        continue;
      }
      if (age < PARTIAL_GRACE_MS) throw new DataDirInUseError(dataDir, { pid: 0 });
    }
    takeOver(path, text);
  }
  throw new Error(`could not lock data directory ${dataDir} (lock file ${path} keeps changing)`);
}

/**
 * Moves a stale lock file aside atomically (rename), checks that what was moved is the stale file read before
 * (not a live lock a concurrent starter created meanwhile; that one is put back), and deletes it.
 */
function takeOver(path: string, staleText: string): void {
  const aside = `${path}.stale-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    renameSync(path, aside);
  } catch {
    return; // gone already: someone else took it over; the caller retries open(wx)
  }
  const moved = readOrUndefined(aside);
  if (moved !== staleText) {
    // A concurrent starter replaced the stale file first: give its lock back (link never overwrites).
    try {
      linkSync(aside, path);
    } catch {
      /* a third starter holds it now */
    }
  }
  try {
    unlinkSync(aside);
  } catch {
    /* ignore */
  }
}

function register(dataDir: string, path: string, content: string): DataDirLock {
  const onExit = () => lock.release();
  const lock: DataDirLock = {
    dataDir,
    path,
    release() {
      if (held.get(path) !== lock) return;
      held.delete(path);
      process.off('exit', onExit);
      // Remove it only while it is still ours (never someone else's after a takeover).
      if (readOrUndefined(path) === content) {
        try {
          unlinkSync(path);
        } catch {
          /* ignore */
        }
      }
    },
  };
  held.set(path, lock);
  process.on('exit', onExit);
  return lock;
}
