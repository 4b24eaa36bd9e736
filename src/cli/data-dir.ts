/**
 * Where each role keeps its state (docs/cli.md "Data directories"). One convention for every command:
 * `CPNS_DATA_DIR` names the directory that holds one directory per role (`server`, `gateway`, `pne`); without it,
 * the XDG base directory `$XDG_DATA_HOME/cpns` (default `~/.local/share/cpns`). `--data-dir` names one role's
 * own directory and wins over both. `cpns admin` on the server's machine reads the server's directory.
 */
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';

export type DataRole = 'server' | 'gateway' | 'pne';

type Env = Readonly<Record<string, string | undefined>>;

/** The directory holding every role's data directory. */
export function dataRoot(env: Env = process.env): string {
  const explicit = env.CPNS_DATA_DIR;
  if (explicit) return explicit;
  // XDG Base Directory Specification: a relative XDG_DATA_HOME is invalid and must be ignored.
  const xdg = env.XDG_DATA_HOME;
  const base = xdg && isAbsolute(xdg) ? xdg : join(env.HOME || homedir(), '.local', 'share');
  return join(base, 'cpns');
}

/** The data directory of `role` when no --data-dir is given. */
export function defaultDataDir(role: DataRole, env: Env = process.env): string {
  return join(dataRoot(env), role);
}
