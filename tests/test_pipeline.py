"""End to end: the three spark-submit jobs on a few thousand real MNIST rows, against the real local
Cassandra node, with the real connector, Petastorm and TorchDistributor."""
import gzip
import json
import os
import uuid

import pytest

from conftest import BIN, ROOT, last_json, run
from digitforge.core.digest import sha256

pytestmark = pytest.mark.integration
SUBMIT = str(ROOT / "scripts" / "submit.sh")
N = 3000


def cql(query: str) -> str:
    return run([str(BIN / "cqlsh"), "127.0.0.1", "-e", query]).stdout


def count(keyspace: str, table: str) -> int:
    lines = [ln.strip() for ln in cql(f"SELECT count(*) FROM {keyspace}.{table}").splitlines()]
    return int(lines[next(i for i, ln in enumerate(lines) if ln.startswith("---")) + 1])


@pytest.fixture(scope="module")
def pipeline(it_overrides, it_keyspace):
    run([str(BIN / "digitforge"), *it_overrides, "schema", "apply"])
    run([SUBMIT, "ingest", "--dataset", "mnist", "--limit", str(N), *it_overrides])
    manifest = last_json(run([SUBMIT, "convert", "--dataset", "mnist", *it_overrides]).stdout)
    model = last_json(run([SUBMIT, "train", "--dataset", "mnist", "--epochs", "3", *it_overrides]).stdout)
    return {"manifest": manifest, "model": model, "keyspace": it_keyspace, "overrides": it_overrides}


def test_ingest_writes_every_row_as_a_compact_blob(pipeline):
    ks = pipeline["keyspace"]
    assert count(ks, "raw_train") == N and count(ks, "raw_test") == N
    out = cql(f"SELECT pixels FROM {ks}.raw_train LIMIT 1")
    blob = next(tok for tok in out.split() if tok.startswith("0x"))
    assert len(blob) == 2 + 2 * 784  # one 784-byte blob per image


def test_reingest_does_not_duplicate(pipeline):
    run([SUBMIT, "ingest", "--dataset", "mnist", "--limit", str(N), *pipeline["overrides"]])
    assert count(pipeline["keyspace"], "raw_train") == N


def test_snapshot_holds_both_splits_with_enough_row_groups(pipeline):
    m = pipeline["manifest"]
    assert m["rows"] == {"train": N, "test": N}
    assert len(list((ROOT / m["path"] / "train").glob("*.parquet"))) >= 2


def test_trained_model_is_registered_far_above_chance(pipeline):
    model = pipeline["model"]
    assert model["architecture"] == "net" and model["test_accuracy"] > 0.8
    row = cql(f"SELECT architecture, test_accuracy, network_sha256 FROM {pipeline['keyspace']}.models WHERE id = {model['id']}")
    assert "net" in row and "(1 rows)" in row


def test_train_job_writes_the_models_report(pipeline):
    root = next(o.split("=", 1)[1] for o in pipeline["overrides"] if o.startswith("report.root="))
    page = os.path.join(root, pipeline["model"]["id"], "index.html")
    assert os.path.isfile(page) and "misclassified.png" in open(page).read()


def test_registry_best_prints_the_model_as_json(pipeline):
    out = run([str(BIN / "digitforge"), *pipeline["overrides"], "registry", "best", "--dataset", "mnist", "--json"]).stdout
    best = json.loads(out)
    assert {"id", "architecture", "test_accuracy", "test_loss"} <= set(best)
    assert best["id"] == pipeline["model"]["id"]


def test_stored_weights_load_into_the_network(pipeline):
    from digitforge.core import config
    from digitforge.core.connection import session
    from digitforge.registry import artifacts
    from digitforge.training.models import build_model

    with session(config.resolve(), pipeline["keyspace"]) as s:
        row = s.execute("SELECT network, network_sha256, config FROM models WHERE id = %s",
                        (uuid.UUID(pipeline["model"]["id"]),)).one()
    assert sha256(row.network) == row.network_sha256
    build_model("net").load_state_dict(artifacts.weights_from_bytes(row.network))
    assert json.loads(row.config)["train"]["epochs"] == 3


def test_bad_input_exits_nonzero_and_writes_nothing(pipeline, tmp_path):
    (tmp_path / "mnist").mkdir()
    # a truncated gzip as the images
    (tmp_path / "mnist" / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(os.urandom(5000))[:2000])
    for name in ("train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (tmp_path / "mnist" / name).write_bytes(b"x")
    proc = run([SUBMIT, "ingest", "--dataset", "mnist", "--data-dir", str(tmp_path / "mnist"), *pipeline["overrides"]], check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "train-images-idx3-ubyte.gz: corrupt or truncated gzip" in output
    assert "nothing was written" in output
    assert count(pipeline["keyspace"], "raw_train") == N
