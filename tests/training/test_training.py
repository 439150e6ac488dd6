"""Training for real on a small Petastorm snapshot of real MNIST rows: across the executors of a
Spark standalone cluster started by scripts/spark-cluster.sh, resumed from a checkpoint, and under
the torchrun entry with streamed shards. Models go to the test run's own keyspace."""
import json
import os
import uuid

import pytest

from conftest import BIN, ROOT, image_rows, last_json, run, standalone_cluster

pytestmark = pytest.mark.integration
SUBMIT = str(ROOT / "scripts" / "submit.sh")
N_TRAIN, N_TEST = 2400, 600


@pytest.fixture(scope="module")
def snapshot_root(tmp_path_factory, it_overrides):
    """A snapshot of the first rows of real MNIST, written by snapshot.write_snapshot with Spark and
    Petastorm (4 row groups a split), and the schema of the test keyspace for the registry."""
    from digitforge.core import config
    from digitforge.core.spark import get_spark
    from digitforge.ingest import idx
    from digitforge.ingest.data_files import dataset_folder
    from digitforge.snapshot import write as snapshot

    run([str(BIN / "digitforge"), *it_overrides, "schema", "apply"])
    os.environ.setdefault("PYSPARK_PYTHON", str(BIN / "python"))  # Spark's Python workers need the venv
    root = tmp_path_factory.mktemp("train-snapshots")
    folder = dataset_folder("mnist", config.resolve()["datasets"]["mnist"]["folder"])
    spark = get_spark("digitforge-test-snapshot")
    try:
        splits = {}
        for split, n in (("train", N_TRAIN), ("test", N_TEST)):
            images, labels = idx.read_pair(*idx.find_split_files(folder, split))
            splits[split] = spark.createDataFrame(image_rows(images[:n], labels[:n]), "id int, label int, pixels binary")
        keyspace = it_overrides[1].split("=", 1)[1]  # train finds the snapshot under the keyspace it trains for
        snapshot.write_snapshot(spark, splits, root, "mnist", source={"keyspace": keyspace, "test": True},
                                files_per_split=4)
    finally:
        spark.stop()
    return root


@pytest.fixture(scope="module")
def train_overrides(it_overrides, snapshot_root, tmp_path_factory):
    ks = it_overrides[1].split("=", 1)[1]
    return ["--set", f"datasets.mnist.keyspace={ks}", "--set", f"convert.snapshot_root={snapshot_root}",
            "--set", f"train.checkpoint_dir={tmp_path_factory.mktemp('checkpoints')}"]


def stored_model(keyspace: str, model_id: str):
    from digitforge.core import config
    from digitforge.core.connection import session

    with session(config.resolve(), keyspace) as s:
        return s.execute("SELECT metrics, config, lineage FROM models WHERE id = %s", (uuid.UUID(model_id),)).one()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One master and two 1-core workers (conftest.standalone_cluster)."""
    with standalone_cluster(tmp_path_factory.mktemp("spark-cluster")) as c:
        yield c


@pytest.mark.cluster
def test_training_across_two_executors_of_a_standalone_cluster(cluster, train_overrides, it_keyspace):
    proc = run([SUBMIT, "train", "--dataset", "mnist", "--architecture", "net", "--epochs", "2", "--no-local-mode",
                *train_overrides], timeout=600,
               env={"DIGITFORGE_SPARK_PROFILE": "standalone", "DIGITFORGE_SPARK_MASTER": cluster["master"]})
    model = last_json(proc.stdout)
    assert model["epochs"] == 2 and model["test_accuracy"] > 0.5
    # rank 0's progress reaches the driver's log while it trains
    assert "epoch 1/2" in proc.stderr + proc.stdout and "epoch 2/2" in proc.stderr + proc.stdout
    row = stored_model(it_keyspace, model["id"])
    metrics = json.loads(row.metrics)
    ranks = metrics["ranks"]
    assert metrics["world_size"] == 2 and len(metrics["history"]) == 2
    # one rank in each executor (its own folder under the workers' work dir), running the shipped zip
    assert len({r["cwd"] for r in ranks}) == 2
    assert all(r["cwd"].startswith(str(cluster["home"] / "work")) for r in ranks)
    assert all("digitforge.zip" in r["package"] for r in ranks)
    assert json.loads(row.config)["train"]["local_mode"] is False


def test_a_run_resumes_from_its_last_checkpoint(train_overrides, it_keyspace):
    first = last_json(run([SUBMIT, "train", "--dataset", "mnist", "--architecture", "mlp", "--epochs", "2",
                           *train_overrides]).stdout)
    resumed = last_json(run([SUBMIT, "train", "--resume", first["run_id"], "--epochs", "3", *train_overrides]).stdout)
    assert resumed["run_id"] == first["run_id"] and resumed["epochs"] == 3
    before = json.loads(stored_model(it_keyspace, first["id"]).metrics)["history"]
    after = json.loads(stored_model(it_keyspace, resumed["id"]).metrics)
    assert [h["epoch"] for h in after["history"]] == [1, 2, 3]
    assert after["history"][:2] == before and after["resumed_from_epoch"] == 2
    assert after["history"][2]["elapsed_s"] > before[1]["elapsed_s"]
    # rank 0's TensorBoard events in the run folder, read back with TensorBoard's own reader: one point
    # per epoch and curve across both processes, the values the registry stored
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from digitforge.training.tensorboard import SCALARS
    checkpoint_dir = next(o.split("=", 1)[1] for o in train_overrides if o.startswith("train.checkpoint_dir="))
    events = EventAccumulator(os.path.join(checkpoint_dir, first["run_id"]))
    events.Reload()
    for tag, key in SCALARS.items():
        points = events.Scalars(tag)
        assert [p.step for p in points] == [1, 2, 3]
        assert [p.value for p in points] == pytest.approx([h[key] for h in after["history"]], rel=1e-6)
    # nothing left to do: a clear error, not a silent re-registration
    proc = run([SUBMIT, "train", "--resume", first["run_id"], "--epochs", "3", *train_overrides], check=False)
    assert proc.returncode == 2 and "already trained 3 of 3 epochs" in proc.stdout + proc.stderr


def test_torchrun_entry_trains_from_streamed_shards(train_overrides):
    proc = run([str(BIN / "torchrun"), "--standalone", "--nproc_per_node", "2", "-m", "digitforge.training",
                "--dataset", "mnist", "--architecture", "mlp", "--epochs", "2", "--set", "train.data=stream",
                *train_overrides], timeout=600)
    result = last_json(proc.stdout)
    assert result["epochs"] == 2 and result["test_accuracy"] > 0.5
    assert [h["epoch"] for h in result["history"]] == [1, 2]
    assert "streamed train rows" in proc.stderr
