#!/usr/bin/env bash
# Developer helper: a local 3-node NATS JetStream cluster for test/cluster (docs/cluster.md).
#   scripts/dev/nats.sh up     start it (installs Debian's nats-server when missing), print the export lines
#   scripts/dev/nats.sh down   stop it (by the PIDs it recorded) and remove its directory
# State lives in ${CPNS_DEV_NATS_DIR:-/tmp/cpns-dev-nats}. `eval "$(scripts/dev/nats.sh up)"` sets the variables.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=nats-cluster.sh
source scripts/dev/nats-cluster.sh
DIR="${CPNS_DEV_NATS_DIR:-/tmp/cpns-dev-nats}"
case "${1:-}" in
  up)
    if [ -f "$DIR/env" ] && kill -0 $(cat "$DIR/pids") 2>/dev/null; then
      cat "$DIR/env"
      exit 0
    fi
    nats_cluster_stop "$DIR"
    nats_ensure_server >&2
    nats_cluster_start "$DIR" >&2
    printf 'export CPNS_TEST_NATS_URLS=%s\nexport CPNS_TEST_NATS_PIDS=%s\n' \
      "$NATS_CLUSTER_URLS" "$NATS_CLUSTER_PIDS" | tee "$DIR/env"
    ;;
  down)
    nats_cluster_stop "$DIR"
    echo "NATS cluster in $DIR stopped" >&2
    ;;
  *)
    echo "usage: $0 up|down" >&2
    exit 2
    ;;
esac
