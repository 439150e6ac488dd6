#!/usr/bin/env bash
# A Spark standalone cluster on this machine: one master and N workers (pip's pyspark has no
# start-master.sh, so its spark-daemon.sh starts the Master and Worker classes).
#   scripts/spark-cluster.sh up|down|status
# Submit to it with DIGITFORGE_SPARK_PROFILE=standalone (conf/spark/standalone.conf).
# Pids, logs and executor folders live under var/spark-cluster (git-ignored). Environment:
#   SPARK_MASTER_HOST (127.0.0.1)  SPARK_MASTER_PORT (7077)  SPARK_MASTER_WEBUI_PORT (8080)
#   SPARK_WORKERS (2)  SPARK_WORKER_CORES (1)  SPARK_WORKER_MEMORY (2g)  SPARK_WORKER_WEBUI_PORT (8081: +i)
#   SPARK_WORKER_GPUS (0; N: each worker offers N GPUs found by conf/spark/gpu-discovery.sh)
#   DIGITFORGE_SPARK_CLUSTER_HOME (var/spark-cluster)  SPARK_CLUSTER_START_TIMEOUT (90 s)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
home=${DIGITFORGE_SPARK_CLUSTER_HOME:-$root/var/spark-cluster}
host=${SPARK_MASTER_HOST:-127.0.0.1}
port=${SPARK_MASTER_PORT:-7077}
ui_port=${SPARK_MASTER_WEBUI_PORT:-8080}
workers=${SPARK_WORKERS:-2}
cores=${SPARK_WORKER_CORES:-1}
memory=${SPARK_WORKER_MEMORY:-2g}
worker_ui=${SPARK_WORKER_WEBUI_PORT:-8081}
gpus=${SPARK_WORKER_GPUS:-0}
timeout=${SPARK_CLUSTER_START_TIMEOUT:-90}
master_url="spark://$host:$port"

export SPARK_HOME=${SPARK_HOME:-$("$root/.venv/bin/python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')}
export SPARK_PID_DIR=$home/pids SPARK_LOG_DIR=$home/logs SPARK_IDENT_STRING=digitforge
export SPARK_LOCAL_IP=${SPARK_LOCAL_IP:-$host}
export PYSPARK_PYTHON=${PYSPARK_PYTHON:-$root/.venv/bin/python}
daemon=$SPARK_HOME/sbin/spark-daemon.sh
MASTER=org.apache.spark.deploy.master.Master
WORKER=org.apache.spark.deploy.worker.Worker

log() { echo "[spark-cluster] $*" >&2; }
pidfile() { echo "$SPARK_PID_DIR/spark-$SPARK_IDENT_STRING-$1-$2.pid"; }
logfile() { echo "$SPARK_LOG_DIR/spark-$SPARK_IDENT_STRING-$1-$2-$HOSTNAME.out"; }
alive() { [[ -f $(pidfile "$1" "$2") ]] && kill -0 "$(cat "$(pidfile "$1" "$2")")" 2>/dev/null; }
registered() { grep -q "Successfully registered with master" "$(logfile $WORKER "$1")" 2>/dev/null; }

wait_for() {  # wait_for DESCRIPTION COMMAND...: poll until COMMAND succeeds or the timeout passes
  local what=$1 i; shift
  for ((i = 0; i < timeout * 2; i++)); do "$@" && return 0; sleep 0.5; done
  log "timed out after ${timeout}s waiting for $what"; return 1
}

master_listens() { (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; }

up() {
  mkdir -p "$SPARK_PID_DIR" "$SPARK_LOG_DIR" "$home/work"
  if alive $MASTER 1; then
    log "master already up (pid $(cat "$(pidfile $MASTER 1)")) at $master_url"
  else
    if master_listens; then log "something else already listens on $host:$port; set SPARK_MASTER_PORT"; exit 1; fi
    "$daemon" start $MASTER 1 --host "$host" --port "$port" --webui-port "$ui_port" >/dev/null
    wait_for "the master on $host:$port" master_listens || { tail -20 "$(logfile $MASTER 1)" >&2; exit 1; }
    log "master up at $master_url (web UI http://$host:$ui_port)"
  fi
  local worker_opts=${SPARK_WORKER_OPTS:-}
  if ((gpus > 0)); then
    worker_opts+=" -Dspark.worker.resource.gpu.amount=$gpus -Dspark.worker.resource.gpu.discoveryScript=$root/conf/spark/gpu-discovery.sh"
  fi
  for ((i = 1; i <= workers; i++)); do
    if alive $WORKER "$i"; then log "worker $i already up"; continue; fi
    SPARK_WORKER_OPTS=$worker_opts "$daemon" start $WORKER "$i" --host "$host" --cores "$cores" --memory "$memory" \
      --webui-port $((worker_ui + i - 1)) --work-dir "$home/work" "$master_url" >/dev/null
  done
  for ((i = 1; i <= workers; i++)); do
    wait_for "worker $i to register" registered "$i" || { tail -20 "$(logfile $WORKER "$i")" >&2; exit 1; }
  done
  log "$workers workers of $cores core(s) and $memory registered with $master_url"
}

down() {
  local pids=() name i
  for ((i = workers; i >= 1; i--)); do
    alive $WORKER "$i" && pids+=("$(cat "$(pidfile $WORKER "$i")")")
    "$daemon" stop $WORKER "$i" >/dev/null || true
  done
  alive $MASTER 1 && pids+=("$(cat "$(pidfile $MASTER 1)")")
  "$daemon" stop $MASTER 1 >/dev/null || true
  for pid in "${pids[@]}"; do
    wait_for "process $pid to exit" bash -c "! kill -0 $pid 2>/dev/null" || kill -9 "$pid" 2>/dev/null || true
  done
  log "down"
}

status() {
  local ok=0 i
  if alive $MASTER 1; then log "master up (pid $(cat "$(pidfile $MASTER 1)")) at $master_url"; else log "master down"; ok=1; fi
  for ((i = 1; i <= workers; i++)); do
    if alive $WORKER "$i"; then log "worker $i up (pid $(cat "$(pidfile $WORKER "$i")"))"; else log "worker $i down"; ok=1; fi
  done
  return $ok
}

case ${1:-} in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
