"""The nightly schedules: the Airflow DAG, loaded by Airflow itself (in its own venv, .venv-airflow,
built by `make airflow-env`), and the cron line run the same spark-submit command as
`scripts/submit.sh retrain --dataset D`, on the same schedule, datasets in the same order."""
import json
import os
import re
import subprocess

import pytest

from conftest import ROOT

AIRFLOW_PY = ROOT / ".venv-airflow" / "bin" / "python"
DAG_FOLDER = ROOT / "conf" / "airflow"
CRONTAB = ROOT / "conf" / "cron" / "digitforge.cron"
VALUED_FLAGS = {"--master", "--conf", "--properties-file", "--driver-java-options", "--jars", "--files",
                "--py-files", "--name"}


@pytest.fixture(scope="module")
def airflow_dags(tmp_path_factory):
    if not AIRFLOW_PY.exists():
        pytest.fail(f"{AIRFLOW_PY} is missing: run `make airflow-env` (`make test` builds it)")
    home = tmp_path_factory.mktemp("airflow_home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "DIGITFORGE_SPARK"))}
    env.update(AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="False", PYTHONPATH="")
    proc = subprocess.run([str(AIRFLOW_PY), str(ROOT / "tests" / "airflow_dag_check.py"), str(DAG_FOLDER)],
                          capture_output=True, text=True, env=env, timeout=300, cwd=home)
    assert proc.returncode == 0, proc.stderr[-5000:]
    return json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1])


def submit_sh(*args, env_extra=None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGITFORGE_SPARK")}
    env.update(DIGITFORGE_SUBMIT_DRY_RUN="1", **(env_extra or {}))
    out = subprocess.run([str(ROOT / "scripts" / "submit.sh"), *args], capture_output=True, text=True,
                         env=env, check=True, timeout=60).stdout
    return out.splitlines()


def parse(cmd: list[str]) -> dict:
    """A spark-submit command as {binary, options, application, args}, written the same whichever way
    the driver's java options were passed (the hook has no --driver-java-options) and jar order aside."""
    binary, rest, options = cmd[0], cmd[1:], {}
    while rest and rest[0] in VALUED_FLAGS:
        flag, value, rest = rest[0], rest[1], rest[2:]
        if flag == "--conf" and value.startswith("spark.driver.extraJavaOptions="):
            flag, value = "--driver-java-options", value.split("=", 1)[1]
        if flag == "--jars":
            value = sorted(value.split(","))
        assert flag not in options, f"{flag} given twice in {cmd}"
        options[flag] = value
    return {"binary": binary, "options": options, "application": rest[0], "args": rest[1:]}


def test_the_dag_loads_in_airflow_and_runs_nightly(airflow_dags):
    assert airflow_dags["import_errors"] == {}
    dag = airflow_dags["dags"]["digitforge_nightly"]
    assert dag["schedule"] == "30 2 * * *"
    assert dag["catchup"] is False and dag["max_active_runs"] == 1
    assert dag["order"] == ["prepare_submit", "retrain_mnist", "retrain_fashion_mnist"]
    assert dag["tasks"]["prepare_submit"]["operator"] == "BashOperator"
    assert {dag["tasks"][t]["operator"] for t in dag["order"][1:]} == {"SparkSubmitOperator"}
    prepare = dag["tasks"]["prepare_submit"]
    assert prepare["env"] == {"DIGITFORGE_SUBMIT_DRY_RUN": "1", "DIGITFORGE_SPARK_PROFILE": "local"}
    assert prepare["append_env"] and f"{ROOT}/scripts/submit.sh" in prepare["bash_command"]
    subprocess.run(["bash", "-c", prepare["bash_command"]], env={**os.environ, **prepare["env"]}, check=True, timeout=60)
    assert (ROOT / "var" / "dist" / "spark-local.conf").is_file() and (ROOT / "var" / "dist" / "digitforge.zip").is_file()
    # one dataset's failure does not keep the next from being retrained
    assert dag["tasks"]["retrain_fashion_mnist"]["trigger_rule"] == "all_done"


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
def test_the_dag_runs_the_command_of_submit_sh(airflow_dags, dataset):
    task = airflow_dags["dags"]["digitforge_nightly"]["tasks"][f"retrain_{dataset.replace('-', '_')}"]
    dag_cmd, ours = parse(task["command"]), parse(submit_sh("retrain", "--dataset", dataset))
    # The hook always adds --master (from the connection the DAG fills from the profile) and --name.
    master = dag_cmd["options"].pop("--master")
    assert dag_cmd["options"].pop("--name") == f"digitforge-retrain-{dataset}"
    profile = (ROOT / "conf" / "spark" / "local.conf").read_text()
    assert master == re.search(r"^spark\.master\s+(\S+)", profile, re.M).group(1)
    assert dag_cmd == ours
    assert ours["application"] == str(ROOT / "jobs" / "retrain.py") and ours["args"] == ["--dataset", dataset]
    assert ours["options"]["--properties-file"] == str(ROOT / "var" / "dist" / "spark-local.conf")
    assert ours["options"]["--files"] == str(ROOT / "var" / "dist" / "digitforge.zip")
    python = str(ROOT / ".venv" / "bin" / "python")
    assert task["env"] == {"SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": python, "PYSPARK_DRIVER_PYTHON": python,
                           "PYTHONPATH": str(ROOT / "lib")}


def crontab_entries() -> tuple[dict, list[tuple[str, str]]]:
    env, jobs = {}, []
    for line in CRONTAB.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if re.match(r"^[A-Z_]+=", line):
            key, value = line.split("=", 1)
            env[key] = value
        else:
            fields = line.split(None, 5)
            jobs.append((" ".join(fields[:5]), fields[5]))
    return env, jobs


def test_the_cron_line_runs_the_same_command_on_the_same_schedule(airflow_dags, tmp_path):
    env, jobs = crontab_entries()
    assert len(jobs) == 1
    schedule, command = jobs[0]
    dag = airflow_dags["dags"]["digitforge_nightly"]
    assert schedule == dag["schedule"]
    # Run the cron command as cron would (its SHELL, its variables), printing instead of submitting.
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("DIGITFORGE_SPARK")}
    run_env.update(env, DIGITFORGE_HOME=str(ROOT), DIGITFORGE_LOGS=str(tmp_path), DIGITFORGE_SUBMIT_DRY_RUN="1")
    subprocess.run([env["SHELL"], "-c", command], env=run_env, check=True, timeout=120)
    retrains = [tid for tid in dag["order"] if tid.startswith("retrain_")]
    datasets = [dag["tasks"][tid]["command"][-1] for tid in retrains]
    assert re.search(r"for d in ([\w -]+); do", command).group(1).split() == datasets
    for task_id in retrains:
        task = dag["tasks"][task_id]
        logged = (tmp_path / f"retrain-{task['command'][-1]}.log").read_text().splitlines()
        dag_cmd = parse(task["command"])
        del dag_cmd["options"]["--master"], dag_cmd["options"]["--name"]
        assert parse(logged) == dag_cmd
    assert 'PYTHONPATH="$DIGITFORGE_HOME/lib"' in command  # as the DAG's env_vars
