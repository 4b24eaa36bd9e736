# shellcheck shell=bash
# Sourced by .ci/run (set -euo pipefail, CLEANUP array, EXIT trap): a throwaway 3-node NATS JetStream cluster on
# 127.0.0.1 for test/cluster (docs/cluster.md). Exports CPNS_TEST_NATS_URLS and CPNS_TEST_NATS_PIDS (n1:pid,...).
# shellcheck source=../../scripts/dev/nats-cluster.sh
source scripts/dev/nats-cluster.sh
nats_ensure_server
nats-server --version
CPNS_NATS_DIR="$(mktemp -d /tmp/cpns-nats.XXXXXX)"
CLEANUP+=("kill \$(cat '$CPNS_NATS_DIR/pids' 2>/dev/null) 2>/dev/null; rm -rf '$CPNS_NATS_DIR'")
nats_cluster_start "$CPNS_NATS_DIR"
export CPNS_TEST_NATS_URLS="$NATS_CLUSTER_URLS"
export CPNS_TEST_NATS_PIDS="$NATS_CLUSTER_PIDS"
echo "NATS JetStream cluster up: $CPNS_TEST_NATS_URLS"
