#!/usr/bin/env bash
# Spark SQL over Cassandra: spark-sql with a Spark profile (its `cass` catalog) and the connector jars.
#   scripts/sql.sh -e "SELECT id, test_accuracy FROM cass.mnist_digits.models"
#   scripts/sql.sh -f sql/registry.sql
#   scripts/sql.sh --set cassandra.hosts=[127.0.0.4] -e "..."   (DIGITFORGE_CASSANDRA=secure: TLS + login)
#   DIGITFORGE_SPARK_PROFILE=local (conf/spark/<profile>.conf)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
profile=${DIGITFORGE_SPARK_PROFILE:-local}
jars=$(ls "$root"/build/jars/spark/*.jar 2>/dev/null | paste -sd, -)
[[ -n $jars ]] || { echo "connector jars not staged: run 'make jars'" >&2; exit 1; }
export SPARK_LOCAL_IP=${SPARK_LOCAL_IP:-127.0.0.1}
export PYSPARK_PYTHON=${PYSPARK_PYTHON:-$root/.venv/bin/python}  # spark-sql finds SPARK_HOME with it
# The profile plus the cluster of the config (hosts, DC, consistency, credentials, TLS: digitforge
# cassandra spark-conf), in a file only this user reads, removed on exit.
props=$(mktemp "${TMPDIR:-/tmp}/digitforge-sql-XXXXXX.conf")
trap 'rm -f "$props"' EXIT
sed "s|@ROOT@|$root|g" "$root/conf/spark/$profile.conf" > "$props"
# Leading `--set cassandra.KEY=VALUE` flags pick the cluster, as for the jobs (DIGITFORGE_CASSANDRA too).
sets=()
while [[ ${1:-} == --set ]]; do sets+=("$1" "$2"); shift 2; done
"$root/.venv/bin/digitforge" "${sets[@]}" cassandra spark-conf >> "$props"
# The spark-sql shell wants a Hive metastore; an in-memory Derby one leaves no metastore_db/ behind
# and lets several shells run side by side. Tables live in the `cass` catalog, not in the metastore.
"$root/.venv/bin/spark-sql" \
  --properties-file "$props" \
  --driver-java-options "-Dlog4j2.configurationFile=file:$root/conf/spark/log4j2.properties -Dderby.stream.error.file=/dev/null" \
  --conf "spark.hadoop.javax.jdo.option.ConnectionURL=jdbc:derby:memory:digitforge_metastore;create=true" \
  --conf "spark.sql.warehouse.dir=${TMPDIR:-/tmp}/digitforge-spark-warehouse" \
  --hiveconf hive.cli.print.header=true \
  --jars "$jars" \
  "$@"
