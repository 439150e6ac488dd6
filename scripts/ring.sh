#!/usr/bin/env bash
# A 3-node Cassandra 5.0 ring on this machine (loopback aliases), for replication and fault drills.
#   scripts/ring.sh up | down | status | wait
#   scripts/ring.sh stop-node N | kill-node N | start-node N | nodetool N ARGS...
# up starts the seed (node 1), then the others together, and returns once every node sees every node
# UN. stop-node is a clean stop (SIGTERM, drains), kill-node a kill -9; start-node brings a node back
# and waits until it is UN again everywhere. Each node lives in $RING_HOME/nodeN (config, data, commit
# log, logs, pid), uses the same node launcher as the single node (scripts/lib/node.sh) and a
# cassandra.yaml rendered from conf/cassandra/cassandra.yaml.in.
# Environment (defaults):
#   RING_ADDRESSES   "127.0.0.1 127.0.0.2 127.0.0.3"  listen/rpc address per node (127.0.0.0/8 only)
#   RING_JMX_PORTS   "7201 7202 7203"                 JMX per node, bound to 127.0.0.1
#   RING_NATIVE_PORT 9042, RING_STORAGE_PORT 7000, RING_HEAP 768M, RING_HOME var/ring
#   CASSANDRA_DC     datacenter1 (GossipingPropertyFileSnitch, one rack: rack1)
#   SECURE           unset: the mode the ring was set up with (0 for a new one); 1: secured like
#                    `scripts/cassandra.sh up` with SECURE=1 (material in DIGITFORGE_SECURE_DIR)
#   CASSANDRA_START_TIMEOUT 180 (seconds per wait)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib/node.sh
source "$root/scripts/lib/node.sh"
log_tag=ring

ring_home=${RING_HOME:-$root/var/ring}
read -r -a addresses <<< "${RING_ADDRESSES:-127.0.0.1 127.0.0.2 127.0.0.3}"
read -r -a jmx_ports <<< "${RING_JMX_PORTS:-7201 7202 7203}"
count=${#addresses[@]}
dc=${CASSANDRA_DC:-datacenter1}
secure=$(secure_mode "$ring_home/node1") || exit 1   # the ring keeps the mode it was set up with

bad_config() { log "$*"; exit 2; }
(( count >= 1 )) || bad_config "RING_ADDRESSES is empty"
(( ${#jmx_ports[@]} == count )) \
  || bad_config "RING_JMX_PORTS has ${#jmx_ports[@]} ports for $count RING_ADDRESSES (${addresses[*]}): one per node"
for a in "${addresses[@]}"; do
  [[ $a =~ ^127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || bad_config "RING_ADDRESSES: $a is not a loopback address (127.x.y.z)"
done
[[ $dc =~ ^[A-Za-z0-9_-]+$ ]] || bad_config "CASSANDRA_DC: '$dc' is not a datacenter name (letters, digits, _ and -)"

# ring_node N: describe node N (1-based) in the node_* variables of scripts/lib/node.sh.
ring_node() {
  local n=$1
  [[ $n =~ ^[0-9]+$ ]] && (( n >= 1 && n <= count )) || bad_config "no node '$n' in a ring of $count (1..$count)"
  node_name=node$n
  node_home=$ring_home/node$n
  node_address=${addresses[n-1]}
  node_native_port=${RING_NATIVE_PORT:-9042}
  node_storage_port=${RING_STORAGE_PORT:-7000}
  node_jmx_port=${jmx_ports[n-1]}
  node_cluster=digitforge-ring
  node_seeds=${addresses[0]}:$node_storage_port
  node_snitch=GossipingPropertyFileSnitch
  node_dc=$dc node_rack=rack1
  # Evenly spaced Murmur3 tokens: node n owns 1/count of the ring.
  node_token=$("$py" -c "print((2**64 // $count) * ($n - 1) - 2**63)")
  node_options=$conf/jvm-ring-node.options
  node_hints=true
  node_heap=${RING_HEAP:-768M}
  node_secure=$secure
  # system_auth and friends start at RF = ring size, so roles survive a stopped node and the default
  # superuser is only created once the ring can hold it at QUORUM.
  node_extra_opts=(-Dcassandra.system_auth.default_rf="$count" -Dcassandra.system_distributed.default_rf="$count"
                   -Dcassandra.system_traces.default_rf="$count")
}

# The single node (scripts/cassandra.sh) uses the same ports on 127.0.0.1: name it when it holds them.
single_owner() {
  local f=${DIGITFORGE_CASSANDRA_HOME:-$root/var/cassandra}/cassandra.pid
  if [[ -f $f ]] && kill -0 "$(cat "$f")" 2>/dev/null; then
    echo "the single node (pid $(cat "$f"), ${DIGITFORGE_CASSANDRA_HOME:-$root/var/cassandra}) runs: make cassandra-down first, or set RING_ADDRESSES/RING_JMX_PORTS to free loopback addresses/ports"
  else
    echo "another process; stop it or set RING_ADDRESSES / RING_JMX_PORTS"
  fi
}

# ring_mode_matches N: a node that ran before keeps its security mode; switching needs a fresh ring.
ring_mode_matches() {
  ring_node "$1"
  SECURE=$secure secure_mode "$node_home" >/dev/null || exit 1
}

# start_nodes N...: launch those nodes that are not running (ports checked first), then wait for CQL.
start_nodes() {
  local n started=()
  for n in "$@"; do
    ring_mode_matches "$n"
    node_pid >/dev/null && continue
    node_ports_free "$(single_owner)" || exit 1
  done
  (( secure )) && secure_ensure "${addresses[@]}"
  for n in "$@"; do
    ring_node "$n"
    node_pid >/dev/null && continue
    node_launch; started+=("$n")
  done
  # A secured ring whose roles are not set up yet answers but refuses the client's login (4).
  local accept=0; (( secure )) && [[ ! -f $ring_home/roles-ready ]] && accept=4
  for n in "$@"; do
    ring_node "$n"
    node_wait_up "$accept" || exit 1
    log "$node_name answers CQL on $node_address:$node_native_port"
  done
}

# un_everywhere: every running node's view (nodetool status) shows all $count nodes Up/Normal.
un_in_view() {
  local out; out=$(node_tool status 2>/dev/null) || return 1
  local a
  for a in "${addresses[@]}"; do
    grep -qE "^UN +${a//./\\.} " <<< "$out" || return 1
  done
}
wait_un() {
  local start=$SECONDS n
  for n in $(seq 1 "$count"); do
    ring_node "$n"
    node_pid >/dev/null || continue
    until un_in_view; do
      if (( SECONDS - start > start_timeout )); then
        log "not all nodes UN in $node_name's view after ${start_timeout}s:"; node_tool status >&2 || true; return 1
      fi
      sleep 2
    done
  done
}

up() {
  local start=$SECONDS others=()
  for n in $(seq 2 "$count"); do others+=("$n"); done
  start_nodes 1                                   # the seed first: the others learn the ring from it
  (( count > 1 )) && start_nodes "${others[@]}"   # then the rest together (no bootstrap to serialise)
  wait_un || exit 1
  if (( secure )); then
    ring_node 1
    node_secure_bootstrap "$dc" "$count" || exit 1
    touch "$ring_home/roles-ready"
    for n in $(seq 1 "$count"); do ring_node "$n"; node_wait_up 0 || exit 1; done
  fi
  log "all $count nodes UN (${addresses[*]}, datacenter $dc) after $((SECONDS - start))s"
  (( secure )) && secure_print_usage
  return 0
}

down() {
  local n pids=()
  for n in $(seq "$count" -1 1); do ring_node "$n"; node_stop & pids+=($!); done
  wait "${pids[@]}"
}

status() {
  local n rc=0 first=
  for n in $(seq 1 "$count"); do
    ring_node "$n"
    if pid=$(node_pid); then
      if node_probe; then log "$node_name up (pid $pid), CQL answers on $node_address:$node_native_port"; [[ -z $first ]] && first=$n
      else log "$node_name running (pid $pid), CQL not answering"; rc=3; fi
    else
      log "$node_name down"; rc=3
    fi
  done
  if [[ -n $first ]]; then
    ring_node "$first"
    node_tool status || rc=3
    un_in_view || rc=3
  fi
  return $rc
}

cmd=${1:-}; shift || true
case "$cmd" in
  up) up ;;
  down) down ;;
  status) status ;;
  wait) wait_un && log "all $count nodes UN" ;;
  stop-node) ring_node "${1:-}"; node_stop ;;
  kill-node) ring_node "${1:-}"; node_kill ;;
  start-node) ring_node "${1:-}"; n=$1; start=$SECONDS; start_nodes "$n"; wait_un && log "node$n UN again after $((SECONDS - start))s" ;;
  nodetool) ring_node "${1:-}"; shift; node_tool "$@" ;;
  *) echo "usage: $0 up|down|status|wait|stop-node N|kill-node N|start-node N|nodetool N ARGS..." >&2; exit 2 ;;
esac
