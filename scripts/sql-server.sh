#!/usr/bin/env bash
# Spark's Thrift JDBC/ODBC server (HiveThriftServer2, shipped in the venv's pyspark at its own version)
# with a Spark profile's `cass` catalog: any JDBC or Hive client runs sql/registry.sql against it.
#   scripts/sql-server.sh up | down | status
#   DIGITFORGE_SPARK_PROFILE=local         conf/spark/<profile>.conf, then conf/spark/sql-server.conf over it
#   DIGITFORGE_SQL_SERVER_HOST=127.0.0.1   address it listens on;  DIGITFORGE_SQL_SERVER_PORT=10000
#   The cluster is the config's (`digitforge cassandra spark-conf`: hosts, DC, consistency, and the login and
#   TLS from DIGITFORGE_CASSANDRA_CREDENTIALS), as for every job; DIGITFORGE_CASSANDRA=ring picks the ring.
#   DIGITFORGE_SQL_SERVER_WAIT=180         seconds `up` waits for the first answered query
# State under var/sql-server/: pid, server.log, the Derby metastore (metastore_db/) and warehouse/
# (nothing lives there: registry tables are read through `cass`).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cmd=${1:?usage: scripts/sql-server.sh up|down|status}
profile=${DIGITFORGE_SPARK_PROFILE:-local}
host=${DIGITFORGE_SQL_SERVER_HOST:-127.0.0.1}
port=${DIGITFORGE_SQL_SERVER_PORT:-10000}
state=$root/var/sql-server
pidfile=$state/pid
log=$state/server.log

running() { [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }
answers() {  # a real query through Hive's JDBC client, not just an open port (whole output read: a client
  local out      # cut off mid-session by a closed pipe leaves Thrift errors in the server's log)
  out=$("$root/scripts/beeline.sh" -u "jdbc:hive2://$host:$port/" --silent=true --outputformat=tsv2 \
    --showHeader=false -e "SELECT concat('sql-server-', 'ok')" 2>/dev/null) || return 1
  [[ $out == *sql-server-ok* ]]
}

up() {
  if running; then echo "sql-server: already running (pid $(cat "$pidfile")), jdbc:hive2://$host:$port/"; return; fi
  if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
    echo "sql-server: something else listens on $host:$port (DIGITFORGE_SQL_SERVER_PORT)" >&2; exit 2
  fi
  [[ -f $root/conf/spark/$profile.conf ]] || { echo "no Spark profile conf/spark/$profile.conf" >&2; exit 2; }
  jars=$(ls "$root"/build/jars/spark/*.jar 2>/dev/null | paste -sd, -)
  [[ -n $jars ]] || { echo "connector jars not staged: run 'make jars'" >&2; exit 1; }
  mkdir -p "$state"
  # The profile as it is (its @ROOT@ filled in, as scripts/submit.sh does), the server's settings after it.
  props=$state/spark.conf
  # Then the cluster's connector settings (they may hold the password: the file is readable by this user only).
  (umask 077; { sed "s|@ROOT@|$root|g" "$root/conf/spark/$profile.conf"; echo; cat "$root/conf/spark/sql-server.conf"
                "$root/.venv/bin/digitforge" cassandra spark-conf; } > "$props")
  export SPARK_LOCAL_IP=${SPARK_LOCAL_IP:-127.0.0.1}
  export PYSPARK_PYTHON=${PYSPARK_PYTHON:-$root/.venv/bin/python}  # spark-submit finds SPARK_HOME with it
  # spark-submit execs the JVM, so $! is the server's pid. Its own process group: a Ctrl-C in this shell
  # does not reach it, `down` does.
  setsid "$root/.venv/bin/spark-submit" \
    --class org.apache.spark.sql.hive.thriftserver.HiveThriftServer2 \
    --name digitforge-sql-server \
    --properties-file "$props" \
    --driver-java-options "-Dlog4j2.configurationFile=file:$root/conf/spark/log4j2.properties,file:$root/conf/spark/sql-server-log4j2.properties -Dderby.stream.error.file=$state/derby.log" \
    --conf "spark.hadoop.javax.jdo.option.ConnectionURL=jdbc:derby:;databaseName=$state/metastore_db;create=true" \
    --conf "spark.sql.warehouse.dir=$state/warehouse" \
    --jars "$jars" \
    spark-internal \
    --hiveconf "hive.server2.thrift.bind.host=$host" \
    --hiveconf "hive.server2.thrift.port=$port" \
    > "$log" 2>&1 < /dev/null &
  echo $! > "$pidfile"
  wait_s=${DIGITFORGE_SQL_SERVER_WAIT:-180}
  started=$SECONDS
  until answers; do
    if ! running; then
      echo "sql-server: exited during start-up; last lines of $log:" >&2; tail -20 "$log" >&2; rm -f "$pidfile"; exit 1
    fi
    if (( SECONDS - started > wait_s )); then
      echo "sql-server: no answer on $host:$port after ${wait_s}s (DIGITFORGE_SQL_SERVER_WAIT); see $log" >&2; exit 1
    fi
    sleep 2
  done
  echo "sql-server: up in $((SECONDS - started))s (pid $(cat "$pidfile")), jdbc:hive2://$host:$port/ (log $log)"
}

down() {
  if ! running; then echo "sql-server: not running"; rm -f "$pidfile"; return; fi
  pid=$(cat "$pidfile")
  kill "$pid"
  for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then echo "sql-server: pid $pid still up after 30s; killing it"; kill -9 "$pid"; fi
  rm -f "$pidfile"
  echo "sql-server: stopped (pid $pid)"
}

status() {
  if ! running; then echo "sql-server: not running"; exit 3; fi
  if answers; then echo "sql-server: up (pid $(cat "$pidfile")), answers on jdbc:hive2://$host:$port/"
  else echo "sql-server: pid $(cat "$pidfile") running, not answering on $host:$port yet"; exit 1; fi
}

case $cmd in
  up) up ;; down) down ;; status) status ;;
  *) echo "usage: scripts/sql-server.sh up|down|status" >&2; exit 2 ;;
esac
