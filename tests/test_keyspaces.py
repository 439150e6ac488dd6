"""A keyspace made by the original demo, as its README creates it and as its notebook filled it: every job
stops before any work until `digitforge schema apply --keyspace KS` upgrades it in place; then its
pickled models stay listed (never unpickled, best or champion), the first trained model becomes the
champion and `predict` works. Real node, real spark-submit, keyspaces of this run's own."""
import json
import os
import pickle
import uuid
from datetime import datetime, timezone

import numpy as np
import pytest
import torch

from conftest import BIN, ROOT, last_json, run
from digitforge.core import config
from digitforge.core.connection import session
from digitforge.core.tables import KeyspaceNotReady, require_current
from digitforge.registry import aliases as registry_aliases
from digitforge.registry import read as registry_read
from digitforge.training.models import build_model

pytestmark = pytest.mark.integration
SUBMIT = str(ROOT / "scripts" / "submit.sh")
# The original demo's DDL, verbatim (its README, step 3), in a keyspace of this run's own.
ORIGINAL_DDL = [
    "CREATE TABLE {ks}.raw_train (id int PRIMARY KEY, label int, pixels list<int>);",
    "CREATE TABLE {ks}.raw_test (id int PRIMARY KEY, label int, pixels list<int>);",
    "CREATE TABLE {ks}.raw_predict (id int PRIMARY KEY, label int, pixels list<int>);",
    "CREATE TABLE {ks}.models (id uuid PRIMARY KEY, network blob, optimizer blob, upload_date timestamp, comments text);",
]
ROWS = {"raw_train": 120, "raw_test": 40, "raw_predict": 30}
NEEDS_APPLY = "is not at the current digitforge schema"


def images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    px = rng.integers(0, 40, (n, 28, 28))
    for i, lb in enumerate(labels):
        px[i, 2 * lb:2 * lb + 6, 4:24] = 255
    return px.reshape(n, 784), labels


def pickled_model(seed: int) -> tuple[bytes, bytes]:
    """What the original notebook stored: pickle.dumps of the network's and the optimizer's state_dict."""
    torch.manual_seed(seed)
    net = build_model("net")
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.5)
    net(torch.zeros(2, 1, 28, 28)).sum().backward()
    opt.step()
    return pickle.dumps(net.state_dict()), pickle.dumps(opt.state_dict())


def cli(ks: str, *args, check: bool = True):
    return run([str(BIN / "digitforge"), *args, "--keyspace", ks], check=check)


def job(name: str, ks: str, flags: list[str], *args, check: bool = True):
    return run([SUBMIT, name, "--dataset", "mnist", "--keyspace", ks, *flags, *args], check=check)


@pytest.fixture(scope="module")
def original(cql, tmp_path_factory):
    """The original demo's keyspace: its four tables, raw rows written one INSERT ... JSON per row, and two
    models rows of pickled blobs written one INSERT per model."""
    s, created = cql
    ks = f"it_demo_{os.getpid()}"
    created.append(ks)
    s.execute(f"CREATE KEYSPACE {ks} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}")
    for ddl in ORIGINAL_DDL:
        s.execute(ddl.format(ks=ks).rstrip(";"))
    for k, (table, n) in enumerate(ROWS.items()):
        px, labels = images(n, k)
        for i in range(n):
            label = int(labels[i]) if table != "raw_predict" else None
            s.execute(f"INSERT INTO {ks}.{table} JSON '{json.dumps({'id': i, 'label': label, 'pixels': px[i].tolist()})}'")
    pickles = {}
    for seed, comment in ((1, "epoch 1, loss 0.61"), (2, "epoch 2, loss 0.33")):
        mid, (network, optimizer) = uuid.uuid4(), pickled_model(seed)
        s.execute(f"INSERT INTO {ks}.models (id, network, optimizer, upload_date, comments) VALUES (%s, %s, %s, %s, %s)",
                  (mid, network, optimizer, datetime.now(timezone.utc), comment))
        pickles[mid] = (network, optimizer, comment)
    tmp = tmp_path_factory.mktemp("original-demo")
    flags = ["--set", f"convert.snapshot_root={tmp / 'snapshots'}", "--set", "convert.files_per_split=2",
             "--set", f"train.checkpoint_dir={tmp / 'checkpoints'}", "--set", f"report.root={tmp / 'reports'}"]
    return {"ks": ks, "s": s, "pickles": pickles, "flags": flags,
            "cfg": config.use_keyspace(config.resolve(), "mnist", ks)}


def tables(s, ks: str) -> list[str]:
    return sorted(r.table_name for r in s.execute(
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (ks,)))


def assert_needs_apply(proc, ks: str) -> str:
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output[-3000:]
    assert f"keyspace {ks} {NEEDS_APPLY}" in output
    assert "models.dataset" in output and "models.network_sha256" in output and "aliases" in output
    assert f"`digitforge schema apply --keyspace {ks}`" in output
    assert "Traceback" not in output
    return output


def test_every_job_stops_before_any_work_until_schema_apply(original):
    ks, s, flags = original["ks"], original["s"], original["flags"]
    # convert only reads: the original tables convert as they are, into this keyspace's own snapshots
    manifest = last_json(job("convert", ks, flags).stdout)
    assert manifest["rows"] == {"train": ROWS["raw_train"], "test": ROWS["raw_test"]}
    assert f"/{ks}/mnist/" in manifest["path"]
    before = tables(s, ks)

    out = assert_needs_apply(job("train", ks, flags, "--epochs", "1", check=False), ks)
    assert "training net on" not in out  # stopped before training, not after it
    out = assert_needs_apply(job("predict", ks, flags, check=False), ks)
    assert "nothing was written" in out
    out = assert_needs_apply(job("retrain", ks, flags, "--set", "train.epochs=1", check=False), ks)
    assert "the champion is unchanged" in out
    assert_needs_apply(cli(ks, "registry", "list", check=False), ks)

    assert tables(s, ks) == before == ["models", "raw_predict", "raw_test", "raw_train"]
    assert {r.id for r in s.execute(f"SELECT id FROM {ks}.models")} == set(original["pickles"])
    with pytest.raises(KeyspaceNotReady, match=f"keyspace {ks} {NEEDS_APPLY}"):
        require_current(original["cfg"], ks)


def test_schema_apply_upgrades_in_place_and_loses_nothing(original):
    ks, s = original["ks"], original["s"]
    for _ in range(2):  # idempotent
        assert cli(ks, "schema", "apply").stdout.strip() == f"schema applied: {ks}"
    require_current(original["cfg"], ks)
    assert {"aliases", "model_chunks", "models_by_date", "predictions", "leases", "retrain_runs"} <= set(tables(s, ks))
    for table, n in ROWS.items():  # raw rows as they were, pixels still the original list<int>
        assert s.execute(f"SELECT count(*) FROM {ks}.{table}").one()[0] == n
        column = s.execute("SELECT type FROM system_schema.columns WHERE keyspace_name = %s AND table_name = %s "
                           "AND column_name = 'pixels'", (ks, table)).one()
        assert column.type == "list<int>"
    for mid, (network, optimizer, comment) in original["pickles"].items():
        row = s.execute(f"SELECT network, optimizer, comments, dataset, network_sha256 FROM {ks}.models WHERE id = %s",
                        (mid,)).one()
        assert (row.network, row.optimizer, row.comments) == (network, optimizer, comment)
        assert row.dataset is None and row.network_sha256 is None


def test_original_models_are_listed_never_unpickled_best_or_champion(original, monkeypatch):
    ks, pickles = original["ks"], original["pickles"]
    listed = json.loads(cli(ks, "registry", "list", "--json").stdout)
    assert {m["id"] for m in listed} == {str(m) for m in pickles}
    assert {m["origin"] for m in listed} == {"original-demo"} and not any(m["aliases"] for m in listed)
    assert cli(ks, "registry", "list").stdout.count("original demo model, pickled: not loadable") == 2
    mid, (network, optimizer, comment) = next(iter(pickles.items()))
    shown = json.loads(cli(ks, "registry", "show", str(mid), "--json").stdout)
    assert shown["origin"] == "original-demo" and shown["comments"] == comment and shown["test_accuracy"] is None
    assert shown["artifacts"] == {"network": {"bytes": len(network), "format": "pickled: not loadable"},
                                  "optimizer": {"bytes": len(optimizer), "format": "pickled: not loadable"}}
    best = cli(ks, "registry", "best", check=False)
    assert best.returncode == 2 and "no models registered" in best.stderr
    promote = cli(ks, "registry", "promote", str(mid), check=False)
    assert promote.returncode == 2 and f"model {mid} in {ks} is an original-demo model" in promote.stderr
    assert registry_aliases.list_aliases(original["cfg"], "mnist") == []

    def never(*args, **kwargs):
        raise AssertionError("the registry unpickled an original-demo blob")

    for name in ("loads", "load", "Unpickler"):
        monkeypatch.setattr(pickle, name, never)
    monkeypatch.setattr(torch, "load", never)
    assert len(registry_read.list_models(original["cfg"], "mnist")) == 2
    registry_read.show(original["cfg"], "mnist", str(mid))
    with pytest.raises(registry_read.ArtifactError, match=f"model {mid}: network has no sha256 and holds a pickle"):
        registry_read.fetch(original["cfg"], "mnist", str(mid))


def test_first_model_becomes_champion_and_predict_works_straight_after(original):
    ks, s, flags, cfg = original["ks"], original["s"], original["flags"], original["cfg"]
    proc = job("train", ks, flags, "--epochs", "1")
    model = last_json(proc.stdout)
    assert model["keyspace"] == ks and model["champion"] is True
    assert f"predict with it: scripts/submit.sh predict --dataset mnist --keyspace {ks} --model champion" in (
        proc.stdout + proc.stderr)
    champion = next(a for a in registry_aliases.list_aliases(cfg, "mnist") if a["alias"] == "champion")
    assert champion["model_id"] == model["id"]
    assert [(h["from"], h["to"], h["reason"]) for h in champion["history"]] == [
        (None, model["id"], "first model of the dataset")]
    assert registry_aliases.champion_if_none(cfg, "mnist", model["id"]) is False  # only ever the first

    listed = json.loads(cli(ks, "registry", "list", "--json").stdout)
    assert [m["origin"] for m in listed] == ["original-demo", "original-demo", "digitforge"]
    assert listed[-1]["aliases"] == ["champion"]
    assert json.loads(cli(ks, "registry", "best", "--json").stdout)["id"] == model["id"]
    assert registry_read.show(cfg, "mnist", "champion")["lineage"]["source"]["keyspace"] == ks

    out = last_json(job("predict", ks, flags).stdout)  # champion by default, the original list<int> raw_predict
    assert out["model_id"] == model["id"] and out["rows_written"] == ROWS["raw_predict"]
    assert out["source"] == f"{ks}.raw_predict" and out["predictions"] == f"{ks}.predictions"
    assert s.execute(f"SELECT count(*) FROM {ks}.predictions").one()[0] == ROWS["raw_predict"]


def test_ingest_stops_on_an_older_digitforge_keyspace_and_writes_nothing(cql, tmp_path):
    """A keyspace of an earlier digitforge: blob raw tables, a registry without the chunk columns."""
    from conftest import write_csv

    s, created = cql
    ks = f"it_older_{os.getpid()}"
    created.append(ks)
    s.execute(f"CREATE KEYSPACE {ks} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}")
    for table in ("raw_train", "raw_test", "raw_predict"):
        s.execute(f"CREATE TABLE {ks}.{table} (id int PRIMARY KEY, label int, pixels blob)")
    s.execute(f"CREATE TABLE {ks}.models (id uuid PRIMARY KEY, network blob, optimizer blob, upload_date timestamp, "
              "comments text, dataset text, architecture text, test_accuracy double, test_loss double, "
              "train_seconds double, network_sha256 text, optimizer_sha256 text, config text, metrics text, lineage text)")
    px, labels = images(50, 9)
    csv = write_csv(tmp_path / "train.csv", px.reshape(-1, 28, 28), labels)
    proc = run([SUBMIT, "ingest", "--csv", str(csv), "--keyspace", ks], check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output[-3000:]
    assert f"keyspace {ks} {NEEDS_APPLY}" in output and "models.network_size, models.network_chunks" in output
    assert f"`digitforge schema apply --keyspace {ks}`" in output and "nothing was written (0 rows)" in output
    assert s.execute(f"SELECT count(*) FROM {ks}.raw_train").one()[0] == 0
    with session(config.resolve(), ks) as check:
        assert "aliases" not in check.cluster.metadata.keyspaces[ks].tables  # the job created nothing
