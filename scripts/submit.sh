#!/usr/bin/env bash
# spark-submit a digitforge job with a Spark profile and the staged connector jars.
#   scripts/submit.sh JOB [job flags]         JOB: ingest | convert | train | predict | retrain
#   DIGITFORGE_SPARK_PROFILE=local (conf/spark/<profile>.conf: local, standalone, gpu, yarn, k8s)
#   DIGITFORGE_SPARK_MASTER=spark://host:port overrides the profile's spark.master
#   DIGITFORGE_SPARK_CONF="key=value key=value" overrides the profile's settings for one run (--conf each)
#   DIGITFORGE_SUBMIT_DRY_RUN=1 prepares var/dist and prints the spark-submit command (one argument a
#   line) instead of running it: the Airflow DAG runs this very command (tests/test_schedules.py).
# Profiles for clusters that share nothing with this host (yarn, standalone-dist; k8s through its image)
# run executors on the packed environment of `make dist`: spark.archives
# @DIST@/digitforge-env.tar.gz#environment, ./environment/bin/python, the package from its wheel. The
# fallback, for workers that share this host's Python environment (local, standalone, gpu): the package
# as var/dist/digitforge.zip (built here from lib/, --files) on PYTHONPATH. A profile's spark.files are
# shipped too. The driver always runs here, on PYSPARK_DRIVER_PYTHON (spark.pyspark.python in a profile
# names the executors' interpreter, which would otherwise win for the driver too).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
job=${1:?usage: scripts/submit.sh JOB [flags]}; shift
profile=${DIGITFORGE_SPARK_PROFILE:-local}
[[ -f $root/conf/spark/$profile.conf ]] || { echo "no Spark profile conf/spark/$profile.conf" >&2; exit 1; }
# The connector and its deps, and digitforge's own jar (ingest's SSTable writer).
jars=$(ls "$root"/build/jars/spark/*.jar "$root"/build/jars/digitforge/*.jar 2>/dev/null | paste -sd, -)
[[ -n $jars && -f $root/build/jars/digitforge/digitforge-bulk.jar ]] || { echo "jars not staged: run 'make jars'" >&2; exit 1; }
# Spark's s3a filesystem (hadoop-aws and the AWS SDK, 280 MB) only for a job that names an s3:// location
# in its flags, or with DIGITFORGE_SPARK_S3=1 (an s3:// root set in a preset or a cluster overlay).
if [[ " $* " == *"s3://"* || " $* " == *"s3a://"* || -n ${DIGITFORGE_SPARK_S3:-} ]]; then
  s3=$(ls "$root"/build/jars/s3/*.jar 2>/dev/null | paste -sd, -)
  [[ -n $s3 ]] || { echo "s3 jars not staged: run 'make jars'" >&2; exit 1; }
  jars=$jars,$s3
fi
export SPARK_LOCAL_IP=${SPARK_LOCAL_IP:-127.0.0.1}
export PYSPARK_PYTHON=${PYSPARK_PYTHON:-$root/.venv/bin/python}
export PYSPARK_DRIVER_PYTHON=${PYSPARK_DRIVER_PYTHON:-$PYSPARK_PYTHON}

# The package zip (rebuilt when lib/ changed; written under a temporary name, then renamed) and the
# profile with @ROOT@ (paths such as the GPU discovery script) filled in.
mkdir -p "$root/var/dist"
zip=$root/var/dist/digitforge.zip
"$PYSPARK_PYTHON" - "$root/lib" "$zip" <<'PY'
import os, sys, zipfile
lib, out = sys.argv[1], sys.argv[2]
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(os.path.join(lib, "digitforge")) if "__pycache__" not in d
               for f in fs if f.endswith(".py"))
if os.path.exists(out) and os.path.getmtime(out) >= max(os.path.getmtime(f) for f in files):
    sys.exit(0)
tmp = f"{out}.{os.getpid()}.tmp"
with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
    for f in files:
        z.write(f, os.path.relpath(f, lib))
os.replace(tmp, out)
PY
props=$root/var/dist/spark-$profile.conf
# @ROOT@ and @DIST@ filled in; spark.files leaves the file for --files (the command line would
# override it), merged with the zip.
# DIGITFORGE_DIST_DIR: where `make dist` put the packed environment (var/dist).
sed -e "s|@ROOT@|$root|g" -e "s|@DIST@|${DIGITFORGE_DIST_DIR:-$root/var/dist}|g" "$root/conf/spark/$profile.conf" \
  | grep -v '^spark\.files[[:space:]]' > "$props.$$" && mv "$props.$$" "$props"
# A packed environment the profile ships must exist before anything is submitted; executors that run on
# it get the package from its wheel, so the zip is not shipped then.
archive=$(sed -n 's/^spark\.archives[[:space:]]\+//p' "$props" | cut -d'#' -f1)
if [[ -n $archive && ! -f $archive ]]; then
  echo "profile $profile ships $archive, which does not exist: run 'make dist'" >&2
  [[ -n ${DIGITFORGE_SUBMIT_DRY_RUN:-} ]] || exit 2
fi
files=$([[ -n $archive ]] || echo "$zip")
extra=$(sed -n -e "s|@ROOT@|$root|g" -e 's/^spark\.files[[:space:]]\+//p' "$root/conf/spark/$profile.conf" | paste -sd, -)
[[ -n $extra ]] && files=${files:+$files,}$extra
files_arg=()
[[ -n $files ]] && files_arg=(--files "$files")
master=()
[[ -n ${DIGITFORGE_SPARK_MASTER:-} ]] && master=(--master "$DIGITFORGE_SPARK_MASTER")
overrides=()
read -ra settings <<< "${DIGITFORGE_SPARK_CONF:-}"
for setting in "${settings[@]}"; do
  [[ $setting == spark.*=* ]] || { echo "DIGITFORGE_SPARK_CONF: '$setting' is not spark.KEY=VALUE" >&2; exit 2; }
  overrides+=(--conf "$setting")
done

launch=(exec)
[[ -n ${DIGITFORGE_SUBMIT_DRY_RUN:-} ]] && launch=(exec printf '%s\n')
"${launch[@]}" "$root/.venv/bin/spark-submit" \
  --properties-file "$props" "${master[@]}" "${overrides[@]}" \
  --driver-java-options "-Dlog4j2.configurationFile=file:$root/conf/spark/log4j2.properties" \
  --conf "spark.pyspark.driver.python=$PYSPARK_DRIVER_PYTHON" \
  --jars "$jars" \
  "${files_arg[@]}" \
  "$root/jobs/$job.py" "$@"
