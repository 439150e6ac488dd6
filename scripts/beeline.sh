#!/usr/bin/env bash
# Apache Hive's JDBC shell (BeeLine and the Hive JDBC driver 2.3.9, the Hive that Spark 3.5 is built
# against; both ship in the venv's pyspark jars, so nothing is downloaded twice) against the SQL server.
#   scripts/beeline.sh                       interactive, connected to jdbc:hive2://127.0.0.1:10000/
#   scripts/beeline.sh -f sql/registry.sql   run a file;   scripts/beeline.sh -e "SELECT ..."
#   DIGITFORGE_SQL_URL=jdbc:hive2://host:port/   another server; -u URL on the command line also wins
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
url=${DIGITFORGE_SQL_URL:-jdbc:hive2://${DIGITFORGE_SQL_SERVER_HOST:-127.0.0.1}:${DIGITFORGE_SQL_SERVER_PORT:-10000}/}
export PYSPARK_PYTHON=${PYSPARK_PYTHON:-$root/.venv/bin/python}  # beeline finds SPARK_HOME with it
# Quiet client logging (its default log4j2 config prints every connection attempt at INFO).
export SPARK_SUBMIT_OPTS="${SPARK_SUBMIT_OPTS:-} -Dlog4j2.configurationFile=file:$root/conf/spark/log4j2.properties"
args=("$@")
[[ " $* " == *" -u "* ]] || args=(-u "$url" -n "${USER:-digitforge}" "${args[@]}")
exec "$root/.venv/bin/beeline" "${args[@]}"
