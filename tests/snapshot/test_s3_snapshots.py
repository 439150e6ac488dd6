"""Snapshots by URL, on a real S3-compatible server (moto's, from .venv-s3, on 127.0.0.1): the convert job
writes a snapshot there through Spark's s3a, the train job's two ranks read their shards from it through
pyarrow's S3 filesystem, and the model's lineage names the URL. A location no filesystem handles and
storage that does not answer fail before any training, naming the setting."""
import json
import os
import socket
import subprocess
import time
import uuid

import pytest

from conftest import BIN, ROOT, last_json, run

pytestmark = pytest.mark.integration
SUBMIT = str(ROOT / "scripts" / "submit.sh")
MOTO = ROOT / ".venv-s3" / "bin" / "moto_server"
BUCKET = "digitforge-it"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "digitforge-test", "AWS_SECRET_ACCESS_KEY": "digitforge-test"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    """moto's S3 server on a free 127.0.0.1 port with one bucket; the test credentials in this process's
    environment (the jobs this module starts inherit them), as AWS clients expect them."""
    assert MOTO.exists(), "no .venv-s3: run `make s3-env`"
    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "w")
    proc = subprocess.Popen([str(MOTO), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    saved = {k: os.environ.get(k) for k in CREDENTIALS}
    os.environ.update(CREDENTIALS)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "moto_server did not start"
                time.sleep(0.3)
        import pyarrow.fs as pafs

        pafs.S3FileSystem(endpoint_override=f"127.0.0.1:{port}", scheme="http", region="us-east-1",
                          allow_bucket_creation=True).create_dir(BUCKET)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def stored_lineage(keyspace: str, model_id: str) -> dict:
    from digitforge.core import config
    from digitforge.core.connection import session

    with session(config.resolve(), keyspace) as s:
        row = s.execute("SELECT lineage FROM models WHERE id = %s", (uuid.UUID(model_id),)).one()
    return row.lineage if isinstance(row.lineage, dict) else json.loads(row.lineage)


def test_convert_writes_to_s3_and_two_ranks_train_from_it(s3_endpoint, module_keyspace, make_idx_dataset, tmp_path):
    import pyarrow.fs as pafs

    _, ks = module_keyspace
    root = f"s3://{BUCKET}/snapshots"
    where = ["--set", f"convert.snapshot_root={root}", "--set", f"storage.s3_endpoint={s3_endpoint}",
             "--set", f"train.checkpoint_dir={tmp_path / 'checkpoints'}", "--set", f"report.root={tmp_path / 'reports'}"]
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
