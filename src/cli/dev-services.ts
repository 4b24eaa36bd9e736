/**
 * Throwaway backing services for `cpns demo cluster` and `cpns bench rekey --cluster`: a PostgreSQL and a 3-node
 * NATS JetStream cluster on loopback, started and stopped by the same scripts as CI (scripts/dev, which install
 * Debian's packages when missing). Only in a checkout: an installed package has no scripts/dev and needs
 * --store and --nats.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DaemonError } from './usage.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface Services {
  readonly store: string;
  readonly nats: string[];
  stop(): void;
}

/** `export NAME=value` lines printed by scripts/dev/*.sh up. */
function exportsOf(out: string): Record<string, string> {
  const r: Record<string, string> = {};
  for (const m of out.matchAll(/^export ([A-Z_]+)=(.*)$/gm)) r[m[1] as string] = (m[2] as string).trim();
  return r;
}

/** A throwaway PostgreSQL and 3-node NATS cluster on loopback, by the same scripts as CI (scripts/dev). */
export function startServices(dir: string, log: (l: string) => void): Services {
  const scripts = join(ROOT, 'scripts', 'dev');
  if (!existsSync(join(scripts, 'postgres.sh')) || !existsSync(join(scripts, 'nats.sh')))
    throw new DaemonError(
      'USAGE',
      'no scripts/dev here to start PostgreSQL and NATS: give --store and --nats',
    );
  // Its own directory under the temp root: PostgreSQL runs as the postgres user, who cannot enter `dir` (0700).
  const pgDir = mkdtempSync(join(tmpdir(), 'cpns-demo-pg-'));
  chmodSync(pgDir, 0o711); // enterable, not listable, by the postgres user (the script chowns pg/ inside)
  const pgEnv = { ...process.env, CPNS_PG_DEV_DIR: join(pgDir, 'pg') };
  const natsEnv = { ...process.env, CPNS_DEV_NATS_DIR: join(dir, 'nats') };
  const run = (script: string, arg: string, env: NodeJS.ProcessEnv) =>
    execFileSync('bash', [join(scripts, script), arg], {
      env,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  log('[infra]    starting a throwaway PostgreSQL and a 3-node NATS JetStream cluster on 127.0.0.1 …');
  const pg = exportsOf(run('postgres.sh', 'up', pgEnv)).CPNS_TEST_PG_URL;
  let nats: string | undefined;
  try {
    nats = exportsOf(run('nats.sh', 'up', natsEnv)).CPNS_TEST_NATS_URLS;
  } catch (e) {
    run('postgres.sh', 'down', pgEnv);
    rmSync(pgDir, { recursive: true, force: true });
    throw e;
  }
  if (!pg || !nats) throw new DaemonError('UNAVAILABLE', 'PostgreSQL or NATS did not start');
  return {
    store: pg,
    nats: nats.split(','),
    stop: () => {
      for (const [s, env] of [
        ['nats.sh', natsEnv],
        ['postgres.sh', pgEnv],
      ] as const) {
        try {
          run(s, 'down', env);
        } catch {}
      }
      rmSync(pgDir, { recursive: true, force: true });
    },
  };
}
