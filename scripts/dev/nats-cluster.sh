# shellcheck shell=bash
# A throwaway 3-node NATS JetStream cluster on 127.0.0.1 (docs/cluster.md "Running it locally").
# Sourced by .ci/services/nats.sh (CI) and by scripts/dev/nats.sh (developers); defines functions only.
# Works with Debian 12's nats-server 2.9.10 (no 2.10+ configuration keys).

# nats_free_port: print a TCP port on 127.0.0.1 that nothing listens on now.
nats_free_port() {
  node -e "const s=require('node:net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
}

# nats_ensure_server: install Debian's nats-server when missing (sudo when not root).
nats_ensure_server() {
  command -v nats-server >/dev/null 2>&1 && return 0
  local sudo=""
  if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq || true
  $sudo apt-get install -y -qq nats-server >/dev/null
  command -v nats-server >/dev/null 2>&1
}

# nats_cluster_start DIR: write n1..n3 configs under DIR, start them, wait for a JetStream meta leader.
# Sets NATS_CLUSTER_URLS, NATS_CLUSTER_PIDS (name:pid,...), NATS_CLUSTER_MONITOR (ports), in node order.
nats_cluster_start() {
  local dir="$1" i name
  local -a client cluster monitor pids
  mkdir -p "$dir"
  for i in 1 2 3; do
    client[i]=$(nats_free_port)
    cluster[i]=$(nats_free_port)
    monitor[i]=$(nats_free_port)
  done
  for i in 1 2 3; do
    name="n$i"
    mkdir -p "$dir/$name/store"
    {
      echo "server_name: $name"
      echo "listen: 127.0.0.1:${client[i]}"
      echo "http: 127.0.0.1:${monitor[i]}"
      echo "jetstream { store_dir: \"$dir/$name/store\", max_memory_store: 256MB, max_file_store: 2GB }"
      echo "cluster {"
      echo "  name: cpns"
      echo "  listen: 127.0.0.1:${cluster[i]}"
      echo "  routes: ["
      local j
      for j in 1 2 3; do
        [ "$j" = "$i" ] || echo "    nats-route://127.0.0.1:${cluster[j]}"
      done
      echo "  ]"
      echo "}"
    } >"$dir/$name.conf"
    nats-server -c "$dir/$name.conf" >"$dir/$name.log" 2>&1 &
    pids[i]=$!
  done
  NATS_CLUSTER_URLS="nats://127.0.0.1:${client[1]},nats://127.0.0.1:${client[2]},nats://127.0.0.1:${client[3]}"
  NATS_CLUSTER_PIDS="n1:${pids[1]},n2:${pids[2]},n3:${pids[3]}"
  NATS_CLUSTER_MONITOR="${monitor[1]},${monitor[2]},${monitor[3]}"
  echo "${pids[1]} ${pids[2]} ${pids[3]}" >"$dir/pids"
  # Up when every node answers /healthz?js-enabled-only=true and one reports a meta leader in /jsz.
  local t ok
  for t in $(seq 1 150); do
    ok=0
    for i in 1 2 3; do
      if node -e "fetch('http://127.0.0.1:${monitor[i]}/healthz?js-enabled-only=true').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))" 2>/dev/null; then
        ok=$((ok + 1))
      fi
    done
    if [ "$ok" = 3 ] && node -e "fetch('http://127.0.0.1:${monitor[1]}/jsz').then(r=>r.json()).then(j=>process.exit(j.meta_cluster&&j.meta_cluster.leader?0:1),()=>process.exit(1))" 2>/dev/null; then
      return 0
    fi
    for i in 1 2 3; do
      if ! kill -0 "${pids[i]}" 2>/dev/null; then
        echo "nats-server n$i exited; its log:" >&2
        cat "$dir/n$i.log" >&2
        return 1
      fi
    done
    sleep 0.2
  done
  echo "NATS cluster in $dir did not elect a JetStream meta leader in 30 s" >&2
  tail -n 20 "$dir"/n*.log >&2
  return 1
}

# nats_cluster_stop DIR: kill the PIDs recorded by nats_cluster_start, then remove DIR.
nats_cluster_stop() {
  local dir="$1"
  if [ -f "$dir/pids" ]; then
    # shellcheck disable=SC2046
    kill $(cat "$dir/pids") 2>/dev/null || true
  fi
  rm -rf "$dir"
}
