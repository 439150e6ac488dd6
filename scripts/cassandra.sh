#!/usr/bin/env bash
# Start, stop and check the project's single local Cassandra 5.0 node.
#   scripts/cassandra.sh up|down|status|kill|nodetool ARGS...
# The node runs from the jars that `make jars` staged (build/jars/cassandra), with a cassandra.yaml
# rendered from conf/cassandra/cassandra.yaml.in, and keeps its config, data, logs and pid under
# var/cassandra (git-ignored). SECURE=1 starts it secured (see scripts/lib/secure.sh).
# Environment (defaults): DIGITFORGE_CASSANDRA_HOME (var/cassandra), CASSANDRA_HOST (127.0.0.1),
# CASSANDRA_PORT (9042), CASSANDRA_STORAGE_PORT (7000), CASSANDRA_JMX_PORT (7199),
# CASSANDRA_HEAP (1G), CASSANDRA_START_TIMEOUT (180 s), DIGITFORGE_SECURE_DIR (var/secure),
# SECURE (unset: the mode the home was set up with, 0 for a new home).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib/node.sh
source "$root/scripts/lib/node.sh"
log_tag=cassandra

node_name=cassandra
node_home=${DIGITFORGE_CASSANDRA_HOME:-$root/var/cassandra}
node_address=${CASSANDRA_HOST:-127.0.0.1}
node_native_port=${CASSANDRA_PORT:-9042}
node_storage_port=${CASSANDRA_STORAGE_PORT:-7000}
node_jmx_port=${CASSANDRA_JMX_PORT:-7199}
node_cluster=digitforge-dev
node_seeds=$node_address:$node_storage_port
node_snitch=SimpleSnitch
node_dc=datacenter1 node_rack=rack1   # what SimpleSnitch reports
node_token=0
node_hints=false
node_options=$conf/jvm-single-node.options
node_heap=${CASSANDRA_HEAP:-1G}
node_secure=$(secure_mode "$node_home") || exit 1   # unset SECURE: the mode the home was set up with
node_extra_opts=()

# The ring (scripts/ring.sh) uses the same ports on 127.0.0.1: name it when it is what holds them.
ring_owner() {
  local f
  for f in "${RING_HOME:-$root/var/ring}"/node*/cassandra.pid; do
    [[ -f $f ]] && kill -0 "$(cat "$f")" 2>/dev/null && { echo "the ring from ${RING_HOME:-$root/var/ring} runs: make ring-down first"; return; }
  done
  echo "another process; stop it or set CASSANDRA_HOST / CASSANDRA_PORT"
}

up() {
  local pid accept=0
  if pid=$(node_pid); then
    node_probe >/dev/null 2>&1 && { log "already up (pid $pid) on $node_address:$node_native_port"; (( node_secure )) && secure_print_usage; return 0; }
    log "process $pid exists but CQL does not answer yet; waiting"
  else
    require_jars
    node_ports_free "$(ring_owner)" || exit 1
    (( node_secure )) && secure_ensure "$node_address"
    node_launch
  fi
  # A secured node whose roles are not set up yet answers but refuses the client's login (4).
  (( node_secure )) && [[ ! -f $node_home/roles-ready ]] && accept=4
  local start=$SECONDS
  node_wait_up "$accept" || exit 1
  if (( node_secure )); then
    node_secure_bootstrap "$node_dc" 1 || exit 1
    touch "$node_home/roles-ready"
    node_wait_up 0 || exit 1
  fi
  log "up (pid $(cat "$node_home/cassandra.pid")) on $node_address:$node_native_port after $((SECONDS - start))s"
  (( node_secure )) && secure_print_usage
  return 0
}

status() {
  local pid
  if ! pid=$(node_pid); then log "down"; return 3; fi
  if node_probe; then
    log "up (pid $pid), CQL answers on $node_address:$node_native_port$(node_was_secure && echo ' (secured: TLS + login)')"
  else
    log "starting (pid $pid), CQL not answering yet"; return 3
  fi
}

case "${1:-}" in
  up) up ;; down) node_stop ;; status) status ;;
  nodetool) shift; node_tool "$@" ;;   # JMX credentials from var/secure when the node is secured
  kill) node_kill ;;                   # kill -9, as a crash would (fault drills); `up` restarts it
  *) echo "usage: $0 up|down|status|kill|nodetool ARGS..." >&2; exit 2 ;;
esac
