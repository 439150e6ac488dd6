"""Run by tests/test_schedules.py with Airflow's own Python (.venv-airflow): load the DAG folder with
Airflow's DagBag (no database needed) and print, as JSON, each DAG's schedule and each task's
spark-submit command as the provider's SparkSubmitHook builds it."""
import json
import sys

from airflow.models.dagbag import DagBag


def main(folder: str) -> None:
    bag = DagBag(folder, include_examples=False)
    out = {"import_errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": {}}
    for dag_id, dag in bag.dags.items():
        tasks = {}
        for task in dag.tasks:
            entry = {"operator": type(task).__name__, "upstream": sorted(task.upstream_task_ids),
                     "trigger_rule": str(task.trigger_rule)}
            if hasattr(task, "_get_hook"):  # SparkSubmitOperator: the exact command it would run
                hook = task._get_hook()
                entry["command"] = hook._build_spark_submit_command(task.application)
                entry["env"] = task.env_vars
            if hasattr(task, "bash_command"):
                entry.update(bash_command=task.bash_command, env=task.env, append_env=task.append_env)
            tasks[task.task_id] = entry
        out["dags"][dag_id] = {"schedule": dag.timetable.summary, "catchup": dag.catchup,
                               "max_active_runs": dag.max_active_runs, "tasks": tasks,
                               "order": [t.task_id for t in dag.topological_sort()]}
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
