/**
 * Where the cluster tests find NATS (docs/cluster.md "Running it locally"): CPNS_TEST_NATS_URLS, set by
 * .ci/services/nats.sh in CI and by `eval "$(scripts/dev/nats.sh up)"` locally. With CI=true and no URLs the tests
 * fail; otherwise they are skipped, with the reason in the test name.
 */
import { spawnSync } from 'node:child_process';

export const NATS_URLS: readonly string[] = (process.env.CPNS_TEST_NATS_URLS ?? '')
  .split(',')
  .map((s) => s.trim())
  .filter((s) => s.length > 0);

export const IN_CI = process.env.CI === 'true';

export const SKIP_REASON =
  NATS_URLS.length > 0
    ? undefined
    : 'CPNS_TEST_NATS_URLS is not set: run `eval "$(scripts/dev/nats.sh up)"` (docs/cluster.md)';

/** True when a `nats-server` binary is on PATH (the failover test runs its own private cluster). */
export const HAS_NATS_SERVER = spawnSync('nats-server', ['--version'], { stdio: 'ignore' }).status === 0;
