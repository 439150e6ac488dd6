"""A cluster that shares nothing with the checkout: a standalone cluster (scripts/spark-cluster.sh) whose
workers run from a copy of Spark outside the checkout, in folders outside it, with no Python of their own
(PYSPARK_PYTHON is the packed environment's relative path, which exists only inside a job that ships it).
Ingest (the stream writer, with Cassandra's jars from the packed environment and the staging area on S3),
convert, train across 2 executors and predict run there on the packed environment of `make dist`
(profile standalone-dist), with snapshots and checkpoints on an S3-compatible server; the ranks report,
from inside their tasks, the interpreter and the package they ran."""
import json
import shutil
import uuid

import pytest

from conftest import BUCKET, ROOT, last_json, run, standalone_cluster

pytestmark = [pytest.mark.integration, pytest.mark.cluster]
SUBMIT = str(ROOT / "scripts" / "submit.sh")
ARCHIVE = ROOT / "var" / "dist" / "digitforge-env.tar.gz"


@pytest.fixture(scope="module")
def bare_cluster(tmp_path_factory, s3_endpoint):
    """One master and two 1-core workers: Spark copied out of the checkout, homes under the temporary folder.
    The workers start with the storage credentials in their environment (as a cluster's instance role would
    give them), so s3_endpoint comes first."""
    assert ARCHIVE.exists(), "no packed environment: run `make dist`"
    import pyspark

    home = tmp_path_factory.mktemp("bare-cluster")
    spark_home = home / "spark"
    shutil.copytree(pyspark.__path__[0], spark_home, symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    with standalone_cluster(home, {"SPARK_HOME": str(spark_home), "PYSPARK_PYTHON": "./environment/bin/python"}) as c:
        try:
            yield c
        finally:
            shutil.rmtree(home / "work", ignore_errors=True)  # the last job's unpacked environments


def drop_finished_apps(cluster) -> None:
    """Each job's executors unpack the archive into their own folders (several GB): gone once it ended."""
    for app in (cluster["home"] / "work").glob("app-*"):
        shutil.rmtree(app, ignore_errors=True)


def stored_metrics(keyspace: str, model_id: str) -> dict:
    from digitforge.core import config
    from digitforge.core.connection import session

    with session(config.resolve(), keyspace) as s:
        row = s.execute("SELECT metrics FROM models WHERE id = %s", (uuid.UUID(model_id),)).one()
    return json.loads(row.metrics)


def test_ingest_convert_train_and_predict_on_workers_that_have_only_the_packed_environment(
        bare_cluster, s3_endpoint, module_keyspace, make_idx_dataset, tmp_path):
    _, ks = module_keyspace
    where = ["--set", f"convert.snapshot_root=s3://{BUCKET}/bare/snapshots",
             "--set", f"train.checkpoint_dir=s3://{BUCKET}/bare/checkpoints",
             "--set", f"storage.s3_endpoint={s3_endpoint}", "--set", f"report.root={tmp_path / 'reports'}"]
    on_cluster = {"DIGITFORGE_SPARK_PROFILE": "standalone-dist", "DIGITFORGE_SPARK_MASTER": bare_cluster["master"]}
    # Every process of a job unpacks the environment (the driver too, as Spark does with spark.archives):
    # 12 GB each with the archive's copy on this one disk. Ingest, convert and predict take one executor.
    one_executor = on_cluster | {"DIGITFORGE_SPARK_CONF": "spark.cores.max=1"}

    # The executor reads the staged rows from the bucket, writes SSTables with the environment's Cassandra jars and
    # puts them there; the streaming task takes them from there to the node: no disk shared with the driver.
    ingested = last_json(run([SUBMIT, "ingest", "--dataset", "mnist", "--keyspace", ks, "--data-dir",
                              str(make_idx_dataset(2400, 600)), "--set", f"ingest.staging_dir=s3://{BUCKET}/bare/staging",
                              "--set", f"storage.s3_endpoint={s3_endpoint}"], env=one_executor).stdout)
    assert {(t["table"], t["writer"], t["found"]) for t in ingested["tables"]} == \
        {(f"{ks}.raw_train", "stream", 2400), (f"{ks}.raw_test", "stream", 600)}
    drop_finished_apps(bare_cluster)

    manifest = last_json(run([SUBMIT, "convert", "--dataset", "mnist", "--keyspace", ks, *where], env=one_executor).stdout)
    assert manifest["rows"] == {"train": 2400, "test": 600} and manifest["path"].startswith(f"s3://{BUCKET}/bare/")
    drop_finished_apps(bare_cluster)

    trained = run([SUBMIT, "train", "--dataset", "mnist", "--keyspace", ks, "--architecture", "mlp",
                   "--epochs", "1", "--set", "train.local_mode=false", *where], env=on_cluster)
    assert "removed the driver's unpacked copy of" in trained.stdout  # the driver runs on the checkout's venv
    model = last_json(trained.stdout)
    assert model["test_accuracy"] > 0.5
    ranks = stored_metrics(ks, model["id"])["ranks"]
    work = str(bare_cluster["home"] / "work")
    assert len(ranks) == 2 and len({r["cwd"] for r in ranks}) == 2  # one rank in each executor
    for r in ranks:
        executor_dir = r["cwd"]
        assert executor_dir.startswith(work) and not executor_dir.startswith(str(ROOT))
        # the interpreter is the archive unpacked in the executor's folder, the package its wheel install
        assert r["python"] == f"{executor_dir}/environment/bin/python", r
        assert r["package"].startswith(f"{executor_dir}/environment/lib/") and "site-packages/digitforge" in r["package"], r
    drop_finished_apps(bare_cluster)

    proc = run([SUBMIT, "predict", "--dataset", "mnist", "--keyspace", ks, "--model", model["id"], "--table", "raw_test",
                *where], env=one_executor)
    assert last_json(proc.stdout)["rows_written"] == 600
