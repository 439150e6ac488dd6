"""Airflow DAG: nightly retraining of every dataset's champion (jobs/retrain.py), one dataset after the other.

Each retrain task is a SparkSubmitOperator running exactly the command `scripts/submit.sh retrain
--dataset D` runs, which is also what the cron line (conf/cron/digitforge.cron) runs: the same
spark-submit, Spark profile (conf/spark/<DIGITFORGE_SPARK_PROFILE or local>.conf, filled in under
var/dist/), connector jars, package zip and Python. The first task has submit.sh prepare var/dist/ (the
package zip of lib/, the filled-in profile) without submitting anything. The test
tests/test_schedules.py loads this DAG in Airflow and compares the commands token by token.

Install: point Airflow's dags_folder at this folder, or link this file into it (the checkout is found
from the file's real path, or from $DIGITFORGE_HOME). Two runs never overlap: max_active_runs=1 here,
and the job's lease in Cassandra also guards against a cron run or a manual one.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pendulum
from airflow import DAG
from airflow.operators.bash import BashOperator
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

SCHEDULE = "30 2 * * *"                  # 02:30 every night, as in conf/cron/digitforge.cron
DATASETS = ["mnist", "fashion-mnist"]     # retrained in this order
ROOT = Path(os.environ.get("DIGITFORGE_HOME") or Path(__file__).resolve().parents[2])
PROFILE = os.environ.get("DIGITFORGE_SPARK_PROFILE", "local")
CONN_ID = "digitforge_spark"
DIST = ROOT / "var" / "dist"              # what scripts/submit.sh prepares: package zip, filled-in profile


def profile_value(profile: str, name: str) -> str | None:
    """A setting of a Spark profile (conf/spark/<profile>.conf), or None."""
    for line in (ROOT / "conf" / "spark" / f"{profile}.conf").read_text().splitlines():
        key, _, value = (line.strip() if line.startswith("spark.archives") else line.split("#", 1)[0].strip()).partition(" ")
        if key == name:
            return value.strip()
    return None


def profile_master(profile: str) -> str:
    """spark.master of a Spark profile, unless DIGITFORGE_SPARK_MASTER overrides it (as in submit.sh)."""
    return os.environ.get("DIGITFORGE_SPARK_MASTER") or profile_value(profile, "spark.master") or "local[*]"


# SparkSubmitHook always passes --master from an Airflow connection. This one carries the profile's
# master, so the profile stays the one place that names it (an operator-set env connection wins).
os.environ.setdefault(f"AIRFLOW_CONN_{CONN_ID.upper()}",
                      json.dumps({"conn_type": "spark", "host": profile_master(PROFILE)}))


def conf_overrides() -> dict:
    """DIGITFORGE_SPARK_CONF's settings over the profile's, refused as submit.sh refuses them."""
    settings = os.environ.get("DIGITFORGE_SPARK_CONF", "").split()
    for setting in settings:
        if not (setting.startswith("spark.") and "=" in setting):
            raise ValueError(f"DIGITFORGE_SPARK_CONF: '{setting}' is not spark.KEY=VALUE")
    return dict(setting.split("=", 1) for setting in settings)


def retrain_task(dataset: str, **kwargs) -> SparkSubmitOperator:
    """The spark-submit of scripts/submit.sh: same binary, properties file, driver options, jars, env."""
    jars = ",".join(sorted(str(p) for d in ("spark", "digitforge") for p in (ROOT / "build" / "jars" / d).glob("*.jar")))
    python = str(ROOT / ".venv" / "bin" / "python")
    return SparkSubmitOperator(
        task_id=f"retrain_{dataset.replace('-', '_')}",
        conn_id=CONN_ID,
        spark_binary=str(ROOT / ".venv" / "bin" / "spark-submit"),
        properties_file=str(DIST / f"spark-{PROFILE}.conf"),
        conf={"spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile=file:{ROOT}/conf/spark/log4j2.properties",
              "spark.pyspark.driver.python": python,  # the driver runs here, whatever the executors run on
              **conf_overrides()},
        jars=jars,
        # executors on the packed environment (a profile with spark.archives) take the package from its wheel
        files=None if profile_value(PROFILE, "spark.archives") else str(DIST / "digitforge.zip"),
        application=str(ROOT / "jobs" / "retrain.py"),
        application_args=["--dataset", dataset],
        name=f"digitforge-retrain-{dataset}",
        env_vars={"SPARK_LOCAL_IP": os.environ.get("SPARK_LOCAL_IP", "127.0.0.1"), "PYSPARK_PYTHON": python,
                  "PYSPARK_DRIVER_PYTHON": python, "PYTHONPATH": str(ROOT / "lib")},
        **kwargs,
    )


with DAG(
    dag_id="digitforge_nightly",
    description="Retrain each dataset's champion on a fresh snapshot; promote only a better challenger",
    schedule=SCHEDULE,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,                        # a missed night is not worth replaying
    max_active_runs=1,
    default_args={"owner": "digitforge", "retries": 0},
    tags=["digitforge", "spark", "retrain"],
    doc_md=__doc__,
) as dag:
    # A dry run of submit.sh builds var/dist (as every submit.sh run does) and submits nothing.
    previous = BashOperator(task_id="prepare_submit", bash_command=f"'{ROOT}/scripts/submit.sh' retrain >/dev/null",
                            env={"DIGITFORGE_SUBMIT_DRY_RUN": "1", "DIGITFORGE_SPARK_PROFILE": PROFILE}, append_env=True)
    for k, name in enumerate(DATASETS):
        # all_done: a failed dataset does not keep the next one from being retrained
        task = retrain_task(name, trigger_rule="all_done" if k else "all_success")
        previous >> task
        previous = task
