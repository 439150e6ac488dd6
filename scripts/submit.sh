#!/usr/bin/env bash
# spark-submit a digitforge job with a Spark profile and the staged connector jars.
#   scripts/submit.sh JOB [job flags]         JOB: ingest | convert | train | predict | retrain
#   DIGITFORGE_SPARK_PROFILE=local (conf/spark/<profile>.conf)
#   DIGITFORGE_SUBMIT_DRY_RUN=1 prints the spark-submit command (one argument a line) instead of running
#   it: the schedules' test checks that the Airflow DAG runs this very command.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
job=${1:?usage: scripts/submit.sh JOB [flags]}; shift
profile=${DIGITFORGE_SPARK_PROFILE:-local}
jars=$(ls "$root"/build/jars/spark/*.jar 2>/dev/null | paste -sd, -)
[[ -n $jars ]] || { echo "connector jars not staged: run 'make jars'" >&2; exit 1; }
export SPARK_LOCAL_IP=${SPARK_LOCAL_IP:-127.0.0.1}
export PYSPARK_PYTHON=${PYSPARK_PYTHON:-$root/.venv/bin/python}
export PYSPARK_DRIVER_PYTHON=${PYSPARK_DRIVER_PYTHON:-$PYSPARK_PYTHON}
launch=(exec)
[[ -n ${DIGITFORGE_SUBMIT_DRY_RUN:-} ]] && launch=(exec printf '%s\n')
"${launch[@]}" "$root/.venv/bin/spark-submit" \
  --properties-file "$root/conf/spark/$profile.conf" \
  --driver-java-options "-Dlog4j2.configurationFile=file:$root/conf/spark/log4j2.properties" \
  --jars "$jars" \
  "$root/jobs/$job.py" "$@"
