"""Snapshots, checkpoints and reports by URL, on a real S3-compatible server (moto's, from .venv-s3, on
127.0.0.1): the convert job writes a snapshot there through Spark's s3a, the train job's two ranks read
their shards from it and checkpoint every epoch there, its report is stored there, the model's lineage
names the URL, and `--resume` continues the run from its S3 checkpoint. A location no filesystem handles
and storage that does not answer fail before any training, naming the setting."""
import json
import uuid

import pytest

from conftest import BUCKET, CREDENTIALS, ROOT, free_port, last_json, run

pytestmark = pytest.mark.integration
SUBMIT = str(ROOT / "scripts" / "submit.sh")


def stored_lineage(keyspace: str, model_id: str) -> dict:
    from digitforge.core import config
    from digitforge.core.connection import session

    with session(config.resolve(), keyspace) as s:
        row = s.execute("SELECT lineage FROM models WHERE id = %s", (uuid.UUID(model_id),)).one()
    return row.lineage if isinstance(row.lineage, dict) else json.loads(row.lineage)


def test_convert_writes_to_s3_two_ranks_train_and_checkpoint_there(s3_endpoint, module_keyspace, make_idx_dataset,
                                                                   tmp_path):
    import pyarrow.fs as pafs

    _, ks = module_keyspace
    root = f"s3://{BUCKET}/snapshots"
    where = ["--set", f"convert.snapshot_root={root}", "--set", f"storage.s3_endpoint={s3_endpoint}",
             "--set", f"train.checkpoint_dir=s3://{BUCKET}/checkpoints", "--set", f"report.root=s3://{BUCKET}/reports"]
    run([SUBMIT, "ingest", "--dataset", "mnist", "--keyspace", ks, "--data-dir", str(make_idx_dataset(2400, 600))])

    manifest = last_json(run([SUBMIT, "convert", "--dataset", "mnist", "--keyspace", ks, *where]).stdout)
    assert manifest["path"] == f"{root}/{ks}/mnist/{manifest['version']}"
    assert manifest["rows"] == {"train": 2400, "test": 600}
    fs = pafs.S3FileSystem(endpoint_override=s3_endpoint.removeprefix("http://"), scheme="http", region="us-east-1")
    stored = {i.path.rsplit("/", 1)[-1] for i in fs.get_file_info(pafs.FileSelector(
        f"{BUCKET}/snapshots/{ks}/mnist/{manifest['version']}", recursive=True)) if i.type == pafs.FileType.File}
    assert "manifest.json" in stored and "_common_metadata" in stored
    assert sum(name.endswith(".parquet") for name in stored) >= 2 * 2  # row groups for 2 ranks, both splits

    proc = run([SUBMIT, "train", "--dataset", "mnist", "--keyspace", ks, "--architecture", "mlp", "--epochs", "1",
                *where])
    model = last_json(proc.stdout)
    assert model["test_accuracy"] > 0.5
    assert "2 ranks" in proc.stdout + proc.stderr
    lineage = stored_lineage(ks, model["id"])
    assert lineage["snapshot"] == manifest["path"] and lineage["snapshot_version"] == manifest["version"]
    run_files = {i.path.split(f"{model['run_id']}/", 1)[1] for i in fs.get_file_info(pafs.FileSelector(
        f"{BUCKET}/checkpoints/{model['run_id']}", recursive=True)) if i.type == pafs.FileType.File}
    assert {"run.json", "latest", "epoch-0001/weights.safetensors", "epoch-0001/optimizer.safetensors",
            "epoch-0001/state.json", "result.json", "registered.json"} <= run_files

    report = {i.path.rsplit("/", 1)[-1] for i in fs.get_file_info(pafs.FileSelector(
        f"{BUCKET}/reports/{model['id']}", allow_not_found=True)) if i.type == pafs.FileType.File}
    assert "index.html" in report and any(name.endswith(".png") for name in report), report  # the train job's report

    resumed = last_json(run([SUBMIT, "train", "--resume", model["run_id"], "--epochs", "2", *where]).stdout)
    assert (resumed["run_id"], resumed["epochs"]) == (model["run_id"], 2)
    assert [h["epoch"] for h in stored_history(ks, resumed["id"])] == [1, 2]


def stored_history(keyspace: str, model_id: str) -> list[dict]:
    from digitforge.core import config
    from digitforge.core.connection import session

    with session(config.resolve(), keyspace) as s:
        row = s.execute("SELECT metrics FROM models WHERE id = %s", (uuid.UUID(model_id),)).one()
    metrics = row.metrics if isinstance(row.metrics, dict) else json.loads(row.metrics)
    return metrics["history"]


@pytest.mark.parametrize("root, setting_problem", [
    ("nofs://somewhere/snapshots", "no filesystem handles nofs://"),
    (f"s3://{BUCKET}/snapshots", "cannot be reached"),
])
def test_a_bad_snapshot_location_fails_before_training(root, setting_problem, tmp_path):
    # the second: an S3 endpoint where nothing listens (a closed port on 127.0.0.1)
    proc = run([SUBMIT, "train", "--dataset", "mnist", "--epochs", "1", "--set", f"convert.snapshot_root={root}",
                "--set", f"storage.s3_endpoint=http://127.0.0.1:{free_port()}",
                "--set", f"train.checkpoint_dir={tmp_path}"], check=False, timeout=300,
               env={**CREDENTIALS, "AWS_EC2_METADATA_DISABLED": "true"})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out[-3000:]
    assert "convert.snapshot_root" in out and setting_problem in out
    assert "Traceback" not in out and "ranks" not in out
    assert not list(tmp_path.iterdir())  # no run folder: nothing started
