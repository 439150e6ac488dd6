#!/usr/bin/env bash
# Start, stop and check the project's single local Cassandra 5.0 node.
#   scripts/cassandra.sh up|down|status
# The node runs from the jars that `make jars` staged (build/jars/cassandra), with conf/cassandra/,
# and keeps its data, logs and pid under var/cassandra (git-ignored).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
home=${DIGITFORGE_CASSANDRA_HOME:-$root/var/cassandra}
jars=$root/build/jars/cassandra
conf=$root/conf/cassandra
pidfile=$home/cassandra.pid
host=${CASSANDRA_HOST:-127.0.0.1}
port=${CASSANDRA_PORT:-9042}
timeout=${CASSANDRA_START_TIMEOUT:-120}

log() { echo "[cassandra] $*" >&2; }

running_pid() {
  [[ -f $pidfile ]] || return 1
  local pid; pid=$(cat "$pidfile")
  kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

cql_answers() {
  # A real CQL round trip, not just an open port: the native transport opens before
  # the node has finished starting up.
  "$root/.venv/bin/python" - "$host" "$port" <<'PY' >/dev/null 2>&1
import sys
from cassandra.cluster import Cluster
c = Cluster([sys.argv[1]], port=int(sys.argv[2]), connect_timeout=2, control_connection_timeout=2)
s = c.connect()
s.execute("SELECT release_version FROM system.local")
c.shutdown()
PY
}

up() {
  if pid=$(running_pid) && cql_answers; then
    log "already up (pid $pid) on $host:$port"; return 0
  fi
  if running_pid >/dev/null; then
    log "process $(cat "$pidfile") exists but CQL does not answer yet; waiting"
  else
    [[ -f $jars/cassandra-all-*.jar ]] 2>/dev/null || ls "$jars"/cassandra-all-*.jar >/dev/null 2>&1 \
      || { log "no Cassandra jars in $jars: run 'make jars' first"; exit 1; }
    if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
      log "something else already listens on $host:$port; stop it or set CASSANDRA_PORT"; exit 1
    fi
    mkdir -p "$home"/{data,commitlog,saved_caches,hints,cdc_raw,logs}
    local opts=() line
    while IFS= read -r line; do
      line=${line%%#*}; line=$(echo "$line" | xargs)   # strip comments and whitespace
      [[ -n $line ]] && opts+=($line)
    done < "$conf/jvm17-server.options"
    log "starting Cassandra from $jars (logs: $home/logs/system.log)"
    (
      cd "$home"
      exec setsid java "${opts[@]}" \
        -Dcassandra.config="file://$conf/cassandra.yaml" \
        -Dlogback.configurationFile="$conf/logback.xml" \
        -Dcassandra.logdir="$home/logs" \
        -Dcassandra.storagedir="$home" \
        -Dcassandra.native_transport_port="$port" \
        -Dcassandra.jmx.local.port=7199 \
        -Dcassandra-foreground=yes \
        -cp "$jars/*" org.apache.cassandra.service.CassandraDaemon \
        > "$home/logs/stdout.log" 2>&1 < /dev/null
    ) &
    echo $! > "$pidfile"
  fi
  local start=$SECONDS
  until cql_answers; do
    if ! running_pid >/dev/null; then
      log "Cassandra exited during start-up; last log lines:"; tail -n 30 "$home/logs/stdout.log" >&2; exit 1
    fi
    if (( SECONDS - start > timeout )); then
      log "CQL did not answer within ${timeout}s; see $home/logs/system.log"; exit 1
    fi
    sleep 1
  done
  log "up (pid $(cat "$pidfile")) on $host:$port after $((SECONDS - start))s"
}

down() {
  local pid
  if ! pid=$(running_pid); then log "not running"; rm -f "$pidfile"; return 0; fi
  log "stopping pid $pid"
  kill -TERM "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; log "stopped"; return 0; }; sleep 1; done
  log "still running after 60s; sending SIGKILL"; kill -KILL "$pid" || true; rm -f "$pidfile"
}

status() {
  local pid
  if pid=$(running_pid); then
    if cql_answers; then log "up (pid $pid), CQL answers on $host:$port"; else log "starting (pid $pid), CQL not answering yet"; return 3; fi
  else
    log "down"; return 3
  fi
}

case "${1:-}" in
  up) up ;; down) down ;; status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
