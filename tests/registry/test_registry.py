"""The registry against the real node: models with chunked, checksummed artifacts, aliases, the CLI,
the README's Spark SQL and cqlsh queries, load_model, the predict job, and every error it promises.
Models are freshly initialised networks with made-up metrics (no training), in a keyspace of this
run's own."""
import json
import os
import pickle
import re
import threading
import uuid

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import BIN, ROOT, last_json, run
from digitforge.core import config
from digitforge.core.connection import session
from digitforge.core.cql import apply_schema
from digitforge.core.digest import sha256
from digitforge.inference import modules as inference
from digitforge.inference.scoring import probabilities
from digitforge.registry import aliases as registry_aliases
from digitforge.registry import artifacts
from digitforge.registry import read as registry_read
from digitforge.registry import write as registry_write
from digitforge.training.models import build_model, normalise

pytestmark = pytest.mark.integration
SUBMIT = str(ROOT / "scripts" / "submit.sh")
N_PREDICT, N_LEGACY = 300, 40


def fake_result(arch: str, seed: int, accuracy: float, loss: float) -> tuple[dict, torch.nn.Module]:
    """What train_fn returns, for a freshly initialised network: real artifacts, made-up metrics
    (class k is right on 80 + 2k of its 100 test rows)."""
    torch.manual_seed(seed)
    model = build_model(arch)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    model(torch.zeros(2, 1, 28, 28)).sum().backward()
    opt.step()
    cm = np.zeros((10, 10), int)
    for k in range(10):
        cm[k, k], cm[k, (k + 1) % 10] = 80 + 2 * k, 20 - 2 * k
    recall = [(80 + 2 * k) / 100 for k in range(10)]
    metrics = {"confusion_matrix": cm.tolist(), "per_class": {"precision": [0.9] * 10, "recall": recall, "f1": [0.8] * 10},
               "history": [{"epoch": 1, "test_accuracy": accuracy, "test_loss": loss}], "test_rows": 1000,
               "world_size": 1}
    return ({"weights": artifacts.weights_to_bytes(model.state_dict()),
             "optimizer": artifacts.optimizer_to_bytes(opt.state_dict()), "test_accuracy": accuracy,
             "test_loss": loss, "train_seconds": 1.5, "metrics": metrics}, model.eval())


def add_model(cfg: dict, arch: str = "net", seed: int = 0, accuracy: float = 0.1, loss: float = 9.0,
              comments: str = "") -> tuple[uuid.UUID, torch.nn.Module]:
    conf = config.apply_overrides(cfg, [f"train.architecture={arch}"])
    result, model = fake_result(arch, seed, accuracy, loss)
    lineage = {"snapshot": "/snapshots/mnist/v1", "rows": {"train": 1000, "test": 1000},
               "source": {"keyspace": "ks", "tables": {"train": "raw_train", "test": "raw_test"}},
               "code_version": "test"}
    return registry_write.register(conf, "mnist", result, conf, lineage, comments), model


def cli(reg, *args, check=True):
    return run([str(BIN / "digitforge"), *reg["set"], "registry", *args], check=check)


def cqlsh(*args) -> str:
    return run([str(BIN / "cqlsh"), "127.0.0.1", "--request-timeout", "60", *args]).stdout


def tables(output: str) -> list[list[dict]]:
    """cqlsh's result tables as lists of {column: text}."""
    out, lines = [], output.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^-+\+", line):
            header = [h.strip() for h in lines[i - 1].split("|")]
            rows = []
            for row in lines[i + 1:]:
                if not row.strip():
                    break
                rows.append(dict(zip(header, (c.strip() for c in row.split("|")))))
            out.append(rows)
    return out


def weights_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    px = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
    for i, lb in enumerate(labels):
        px[i, 2 * lb:2 * lb + 6, 4:24] = 255
    return px.reshape(n, 784), labels


@pytest.fixture(scope="module")
def reg(cassandra_node):
    ks = f"it_registry_{os.getpid()}"
    overrides = [f"datasets.mnist.keyspace={ks}"]
    cfg = config.resolve(overrides)
    apply_schema(cfg, [ks])
    yield {"ks": ks, "cfg": cfg, "set": ["--set", overrides[0]]}
    run([str(BIN / "cqlsh"), "127.0.0.1", "--request-timeout", "60", "-e", f"DROP KEYSPACE IF EXISTS {ks}"], check=False)


@pytest.fixture(scope="module")
def models(reg):
    """Three models: B best by accuracy, A best by loss, C (a lenet5, 1.7 MB of weights: chunked at
    the default 1 MiB) the champion; and rows to predict, in a blob table and an original-demo table."""
    cfg = reg["cfg"]
    a, model_a = add_model(cfg, "net", 1, accuracy=0.91, loss=0.20, comments="A")
    b, _ = add_model(cfg, "mlp", 2, accuracy=0.95, loss=0.30, comments="B")
    c, model_c = add_model(cfg, "lenet5", 3, accuracy=0.93, loss=0.25, comments="C")
    registry_aliases.promote(cfg, "mnist", a, reason="first")
    registry_aliases.promote(cfg, "mnist", c, reason="lenet5 is steadier")
    px, labels = images(N_PREDICT + N_LEGACY, 7)
    with session(cfg, reg["ks"]) as s:
        ins = s.prepare("INSERT INTO raw_predict (id, label, pixels) VALUES (?, null, ?)")
        for i in range(N_PREDICT):
            s.execute(ins, (i, px[i].tobytes()))
        s.execute("CREATE TABLE IF NOT EXISTS raw_legacy (id int PRIMARY KEY, label int, pixels list<int>)")
        ins = s.prepare("INSERT INTO raw_legacy (id, label, pixels) VALUES (?, ?, ?)")
        for i in range(N_LEGACY):
            s.execute(ins, (i, int(labels[N_PREDICT + i]), px[N_PREDICT + i].tolist()))
    return {"A": a, "B": b, "C": c, "model_A": model_a, "model_C": model_c,
            "predict_px": px[:N_PREDICT], "legacy_px": px[N_PREDICT:]}


# ------------------------------------------------------------------------------ what a model holds

def test_a_model_row_holds_metrics_config_lineage_and_checksummed_artifacts(reg, models):
    shown = json.loads(cli(reg, "show", str(models["C"]), "--json").stdout)
    assert shown["architecture"] == "lenet5" and shown["dataset"] == "mnist" and shown["comments"] == "C"
    assert shown["upload_date"] and shown["train_seconds"] == 1.5
    assert shown["config"]["train"]["architecture"] == "lenet5"
    assert shown["config"]["datasets"]["mnist"]["keyspace"] == reg["ks"]
    assert {"confusion_matrix", "per_class", "history"} <= set(shown["metrics"])
    assert shown["lineage"]["snapshot"] == "/snapshots/mnist/v1" and shown["lineage"]["rows"]["train"] == 1000
    net, opt = shown["artifacts"]["network"], shown["artifacts"]["optimizer"]
    assert net["bytes"] > 1 << 20 and net["chunks"] == 2 and len(net["sha256"]) == 64
    assert opt["chunks"] == 4  # Adam keeps two tensors per weight
    assert shown["aliases"] == ["champion"]
    # chunked: the original demo's blob column is empty, the chunks are in model_chunks
    with session(reg["cfg"], reg["ks"]) as s:
        row = s.execute("SELECT network, network_chunks FROM models WHERE id = %s", (models["C"],)).one()
        assert row.network is None and row.network_chunks == 2
        seqs = [r.seq for r in s.execute("SELECT seq FROM model_chunks WHERE model_id = %s AND artifact = 'network'",
                                         (models["C"],))]
        assert seqs == [0, 1]
        small = s.execute("SELECT network, network_sha256, network_chunks FROM models WHERE id = %s", (models["A"],)).one()
        assert small.network_chunks == 0 and sha256(small.network) == small.network_sha256


def test_list_and_best_by_accuracy_or_loss(reg, models):
    listed = json.loads(cli(reg, "list", "--json").stdout)
    ids = [m["id"] for m in listed]
    assert ids.index(str(models["A"])) < ids.index(str(models["B"])) < ids.index(str(models["C"]))
    best = json.loads(cli(reg, "best", "--dataset", "mnist", "--json").stdout)
    assert {"id", "architecture", "test_accuracy", "test_loss"} <= set(best) and best["id"] == str(models["B"])
    assert json.loads(cli(reg, "best", "--by", "loss", "--json").stdout)["id"] == str(models["A"])
    text = cli(reg, "list").stdout
    assert f"{models['C']}  lenet5" in text and "[champion]" in text


def test_load_model_by_alias_or_id_returns_the_registered_network(reg, models):
    champion = registry_read.load_model("champion", dataset="mnist", cfg=reg["cfg"])
    assert not champion.training and weights_equal(champion, models["model_C"])
    assert champion.digitforge["id"] == str(models["C"])
    by_id = registry_read.load_model(str(models["A"]), dataset="mnist", cfg=reg["cfg"])
    assert weights_equal(by_id, models["model_A"])
    with torch.no_grad():
        out = by_id(normalise(torch.zeros(3, 784, dtype=torch.uint8)))
    assert out.shape == (3, 10)


def test_export_writes_the_stored_safetensors_and_a_json(reg, models, tmp_path):
    out = json.loads(cli(reg, "export", "champion", str(tmp_path / "exp"), "--json").stdout)
    weights = tmp_path / "exp" / f"{models['C']}.safetensors"
    assert out["weights"] == str(weights) and sha256(weights.read_bytes()) == out["sha256"]
    meta = json.loads((tmp_path / "exp" / f"{models['C']}.json").read_text())
    assert meta["artifacts"]["network"]["sha256"] == out["sha256"]
    assert meta["config"]["train"]["architecture"] == "lenet5" and meta["metrics"]["confusion_matrix"]
    net = build_model("lenet5")
    net.load_state_dict(load_file(weights))
    assert weights_equal(net.eval(), models["model_C"])
    named = tmp_path / "m.safetensors"
    cli(reg, "export", str(models["A"]), str(named))
    assert named.is_file() and (tmp_path / "m.json").is_file()


# ------------------------------------------------------------------------------------------ aliases

def test_promotions_keep_their_history(reg, models):
    champion = next(a for a in registry_aliases.list_aliases(reg["cfg"], "mnist") if a["alias"] == "champion")
    assert champion["model_id"] == str(models["C"])
    newest, first = champion["history"]
    assert (newest["from"], newest["to"], newest["reason"]) == (str(models["A"]), str(models["C"]), "lenet5 is steadier")
    assert (first["from"], first["to"], first["reason"]) == (None, str(models["A"]), "first")
    assert first["changed_at"] < newest["changed_at"]
    staged = json.loads(cli(reg, "promote", str(models["B"]), "--alias", "staging", "--reason", "try B", "--json").stdout)
    assert staged == {**staged, "alias": "staging", "model_id": str(models["B"]), "previous": None, "changed": True}
    again = json.loads(cli(reg, "promote", "staging", "--alias", "staging", "--json").stdout)
    assert again["changed"] is False
    assert "staging" in cli(reg, "aliases").stdout


def test_unknown_model_or_alias_is_a_clear_error_and_changes_nothing(reg, models):
    before = registry_aliases.list_aliases(reg["cfg"], "mnist")
    ghost = uuid.uuid4()
    for args, message in [
        (("promote", str(ghost)), f"model {ghost} is not in {reg['ks']}.models"),
        (("promote", "nosuch", "--alias", "champion"), "no model id or alias 'nosuch'"),
        (("promote", str(models["A"]), "--alias", "bad name"), "alias 'bad name'"),
        (("show", str(ghost)), f"model {ghost} is not in"),
        (("show", "@nosuch"), "no model id or alias 'nosuch'"),
        (("export", "nosuch", "/tmp/never-written"), "no model id or alias 'nosuch'"),
    ]:
        proc = cli(reg, *args, check=False)
        assert proc.returncode == 2, args
        assert message in proc.stderr, (args, proc.stderr)
    assert registry_aliases.list_aliases(reg["cfg"], "mnist") == before
    assert not os.path.exists("/tmp/never-written")


def test_concurrent_promotions_never_lose_a_change(reg, models):
    """Each promotion is a conditional batch: racing ones retry, and the history stays one chain."""
    ids = [models["A"], models["B"], models["C"], models["A"]]
    errors = []

    def promote(mid, i):
        try:
            registry_aliases.promote(reg["cfg"], "mnist", mid, alias="race", reason=f"thread {i}", attempts=20)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=promote, args=(mid, i)) for i, mid in enumerate(ids)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    race = next(a for a in registry_aliases.list_aliases(reg["cfg"], "mnist") if a["alias"] == "race")
    chain = list(reversed(race["history"]))
    assert chain[0]["from"] is None and race["model_id"] == chain[-1]["to"]
    assert all(later["from"] == earlier["to"] for earlier, later in zip(chain, chain[1:]))


# ------------------------------------------------------------------------------------------- errors

def test_corrupt_chunk_is_named_and_nothing_is_exported(reg, tmp_path):
    cfg = config.apply_overrides(reg["cfg"], ["registry.chunk_bytes=32768"])
    mid, _ = add_model(cfg, "net", 11)  # 88 KB of weights: 3 chunks
    with session(cfg, reg["ks"]) as s:
        s.execute("UPDATE model_chunks SET data = %s WHERE model_id = %s AND artifact = 'network' AND seq = 1",
                  (b"\x00" * 32768, mid))
    with pytest.raises(registry_read.ArtifactError, match=rf"model {mid} network: chunk 1 of 3 is corrupt"):
        registry_read.load_model(str(mid), cfg=cfg)
    proc = cli(reg, "export", str(mid), str(tmp_path / "out"), check=False)
    assert proc.returncode == 2 and f"model {mid} network: chunk 1 of 3 is corrupt" in proc.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_missing_chunk_is_named(reg):
    cfg = config.apply_overrides(reg["cfg"], ["registry.chunk_bytes=32768"])
    mid, _ = add_model(cfg, "net", 12)
    with session(cfg, reg["ks"]) as s:
        s.execute("DELETE FROM model_chunks WHERE model_id = %s AND artifact = 'network' AND seq = 2", (mid,))
    with pytest.raises(registry_read.ArtifactError, match=rf"model {mid} network: chunk 2 of 3 missing"):
        registry_read.load_model(str(mid), cfg=cfg)


def test_inline_artifact_checksum_mismatch(reg):
    mid, _ = add_model(reg["cfg"], "net", 13)
    other = artifacts.weights_to_bytes(build_model("net").state_dict())
    with session(reg["cfg"], reg["ks"]) as s:
        s.execute("UPDATE models SET network = %s WHERE id = %s", (other, mid))
    with pytest.raises(registry_read.ArtifactError, match=rf"model {mid}: network checksum mismatch"):
        registry_read.load_model(str(mid), cfg=reg["cfg"])


def test_unknown_architecture_names_the_model_and_alias(reg):
    mid, _ = add_model(reg["cfg"], "net", 14)
    with session(reg["cfg"], reg["ks"]) as s:
        s.execute("UPDATE models SET architecture = 'resnet9000' WHERE id = %s", (mid,))
    registry_aliases.promote(reg["cfg"], "mnist", mid, alias="broken")
    with pytest.raises(inference.UnknownArchitecture,
                       match=rf"model {mid} \(alias 'broken'\): architecture 'resnet9000' is not known"):
        registry_read.load_model("broken", cfg=reg["cfg"])


def test_original_demo_pickle_is_never_loaded(reg):
    mid = uuid.uuid4()
    with session(reg["cfg"], reg["ks"]) as s:  # what the original demo wrote: a pickle, no checksum
        s.execute("INSERT INTO models (id, network, upload_date, comments, architecture) VALUES (%s, %s, toTimestamp(now()), 'loss 0.1', 'net')",
                  (mid, pickle.dumps({"conv1.weight": [0.0]})))
    with pytest.raises(registry_read.ArtifactError, match=rf"model {mid}: network has no sha256 and holds a pickle"):
        registry_read.load_model(str(mid), cfg=reg["cfg"])
    with session(reg["cfg"], reg["ks"]) as s:
        s.execute("DELETE FROM models WHERE id = %s", (mid,))


def _model_ids(reg) -> set:
    with session(reg["cfg"], reg["ks"]) as s:
        return {r.id for r in s.execute("SELECT id FROM models")}


def _leftovers(reg, mid) -> list:
    with session(reg["cfg"], reg["ks"]) as s:
        return [s.execute(q, (mid,)).one() for q in (
            "SELECT id FROM models WHERE id = %s",
            "SELECT seq FROM model_chunks WHERE model_id = %s AND artifact = 'network'",
            "SELECT seq FROM model_chunks WHERE model_id = %s AND artifact = 'optimizer'",
            "SELECT class FROM model_classes WHERE model_id = %s")]


def test_failed_chunk_write_leaves_no_model_row_and_no_chunks(reg, monkeypatch):
    cfg = config.apply_overrides(reg["cfg"], ["registry.chunk_bytes=32768"])
    before, seen = _model_ids(reg), []
    real = registry_write._write_chunk

    def failing(s, model_id, artifact, seq, data):
        seen.append(model_id)
        if seq == 2:
            raise OSError("injected: the node went away")
        real(s, model_id, artifact, seq, data)

    monkeypatch.setattr(registry_write, "_write_chunk", failing)
    with pytest.raises(registry_write.RegistrationFailed, match="injected"):
        add_model(cfg, "net", 21)
    assert _model_ids(reg) == before
    assert _leftovers(reg, seen[0]) == [None] * 4


def test_failed_index_write_removes_the_model_again(reg, monkeypatch):
    cfg = config.apply_overrides(reg["cfg"], ["registry.chunk_bytes=32768"])
    before, seen = _model_ids(reg), []
    real = registry_write._write_index

    def failing(s, m, delete=False, class_names=None):
        seen.append(m["id"])
        if not delete:
            raise OSError("injected: batch failed")
        real(s, m, delete, class_names)

    monkeypatch.setattr(registry_write, "_write_index", failing)
    with pytest.raises(registry_write.RegistrationFailed, match="injected"):
        add_model(cfg, "net", 22)
    assert _model_ids(reg) == before
    assert _leftovers(reg, seen[0]) == [None] * 4


def test_schema_apply_upgrades_a_walking_skeleton_keyspace(cassandra_node):
    """A keyspace made before the registry columns existed: apply adds them (twice is fine), and its
    old inline models still load and get indexed."""
    ks = f"it_regold_{os.getpid()}"
    cfg = config.resolve([f"datasets.mnist.keyspace={ks}"])
    weights = artifacts.weights_to_bytes(build_model("mlp").state_dict())
    try:
        with session(cfg) as s:
            s.execute(f"CREATE KEYSPACE {ks} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}")
            s.execute(f"CREATE TABLE {ks}.models (id uuid PRIMARY KEY, network blob, optimizer blob, upload_date timestamp, "
                      "comments text, dataset text, architecture text, test_accuracy double, test_loss double, "
                      "train_seconds double, network_sha256 text, optimizer_sha256 text, config text, metrics text, lineage text)")
            mid = uuid.uuid4()
            s.execute(f"INSERT INTO {ks}.models (id, network, network_sha256, upload_date, dataset, architecture, "
                      "test_accuracy, test_loss, metrics) VALUES (%s, %s, %s, toTimestamp(now()), 'mnist', 'mlp', 0.5, 1.5, '{}')",
                      (mid, weights, sha256(weights)))
        apply_schema(cfg, [ks])
        apply_schema(cfg, [ks])
        with session(cfg) as s:
            s.cluster.refresh_table_metadata(ks, "models")
            assert {"network_chunks", "optimizer_size"} <= set(s.cluster.metadata.keyspaces[ks].tables["models"].columns)
        assert registry_read.load_model(str(mid), cfg=cfg).layers[1].in_features == 784
        assert registry_write.reindex(cfg, "mnist") == 1
        out = cqlsh("-e", f"SELECT id FROM {ks}.models_by_date WHERE dataset = 'mnist'")
        assert str(mid) in out
    finally:
        cqlsh("-e", f"DROP KEYSPACE IF EXISTS {ks}")


# --------------------------------------------------------------------------- the README's queries

def test_cqlsh_queries_answer_the_registry_questions(reg, models, tmp_path):
    script = tmp_path / "registry.cql"
    script.write_text((ROOT / "sql" / "registry.cql").read_text().replace("mnist_digits", reg["ks"]))
    best_acc, best_loss, over_time, champion, history = tables(cqlsh("-f", str(script)))
    assert best_acc[0]["id"] == str(models["B"]) and best_loss[0]["id"] == str(models["A"])
    ids = [r["id"] for r in over_time]
    assert ids.index(str(models["A"])) < ids.index(str(models["B"])) < ids.index(str(models["C"]))
    assert champion[0]["model_id"] == str(models["C"])
    assert [r["reason"] for r in history] == ["lenet5 is steadier", "first"]
    # step 2 of question 4, as the file says: the commented query with the champion's id
    step2 = next(ln for ln in script.read_text().splitlines() if "model_classes" in ln and "<champion id>" in ln)
    classes = tables(cqlsh("-e", step2.lstrip("- ").replace("<champion id>", champion[0]["model_id"])))[0]
    assert [r["class"] for r in classes] == [str(k) for k in range(10)]
    assert [float(r["accuracy"]) for r in classes] == pytest.approx([0.8 + 0.02 * k for k in range(10)])
    assert {r["support"] for r in classes} == {"100"}


def test_reindex_rebuilds_the_query_tables(reg, models):
    cqlsh("-e", f"DELETE FROM {reg['ks']}.models_by_accuracy WHERE dataset = 'mnist'")
    assert json.loads(cli(reg, "reindex", "--json").stdout)["models"] >= 3
    out = cqlsh("-e", f"SELECT id FROM {reg['ks']}.models_by_accuracy WHERE dataset = 'mnist' LIMIT 1")
    assert str(models["B"]) in out


# ----------------------------------------------------------------------------------------- predict

def _predictions(reg, source: str) -> dict:
    with session(reg["cfg"], reg["ks"]) as s:
        rows = s.execute("SELECT source, id, model_id, label, predicted, probabilities, predicted_at FROM predictions")
        return {(r.model_id, r.id): r for r in rows if r.source == source}


def _local(model: torch.nn.Module, px: np.ndarray) -> np.ndarray:
    return probabilities(model, px)


def test_predict_job_writes_each_row_once_per_model(reg, models):
    source = f"{reg['ks']}.raw_predict"
    out = last_json(run([SUBMIT, "predict", "--dataset", "mnist", *reg["set"]]).stdout)
    assert out == {**out, "model_id": str(models["C"]), "source": source, "rows_read": N_PREDICT, "rows_written": N_PREDICT}
    first = _predictions(reg, source)
    assert len(first) == N_PREDICT
    expected = _local(models["model_C"], models["predict_px"])
    got = np.stack([first[(models["C"], i)].probabilities for i in range(N_PREDICT)])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert [first[(models["C"], i)].predicted for i in range(N_PREDICT)] == expected.argmax(1).tolist()
    assert all(r.label is None for r in first.values())

    proc = run([SUBMIT, "predict", "--dataset", "mnist", "--model", "champion", *reg["set"]])
    logs = proc.stdout + proc.stderr  # spark-submit passes the Python driver's stderr on to stdout
    assert "read 300 rows" in logs and "wrote 300 predictions" in logs
    again = _predictions(reg, source)
    assert again.keys() == first.keys()  # overwritten, not duplicated
    assert {r.predicted_at for r in again.values()} != {r.predicted_at for r in first.values()}


def test_predict_job_reads_original_demo_tables_with_any_model(reg, models):
    source = f"{reg['ks']}.raw_legacy"
    out = last_json(run([SUBMIT, "predict", "--dataset", "mnist", "--model", str(models["A"]),
                         "--table", "raw_legacy", *reg["set"]]).stdout)
    assert out["rows_written"] == N_LEGACY and out["labelled_accuracy"] is not None
    rows = _predictions(reg, source)
    expected = _local(models["model_A"], models["legacy_px"]).argmax(1)
    assert [rows[(models["A"], i)].predicted for i in range(N_LEGACY)] == expected.tolist()
    assert all(r.label is not None for r in rows.values())


def test_predict_job_with_unknown_model_writes_nothing(reg, models):
    before = len(_predictions(reg, f"{reg['ks']}.raw_predict"))
    proc = run([SUBMIT, "predict", "--dataset", "mnist", "--model", "nosuch", *reg["set"]], check=False)
    assert proc.returncode == 2
    logs = proc.stdout + proc.stderr
    assert "no model id or alias 'nosuch'" in logs and "nothing was written" in logs
    assert len(_predictions(reg, f"{reg['ks']}.raw_predict")) == before


def test_spark_sql_queries_answer_the_registry_questions(reg, models, tmp_path):
    script = tmp_path / "registry.sql"
    script.write_text((ROOT / "sql" / "registry.sql").read_text().replace("mnist_digits", reg["ks"]))
    out = run([str(ROOT / "scripts" / "sql.sh"), "-S", "-f", str(script)]).stdout
    # one block per query: a header line, then tab-separated rows
    blocks, current = [], None
    for line in out.splitlines():
        cells = line.split("\t")
        if cells[0] in ("id", "upload_date", "class", "changed_at", "model_id"):
            current = {"header": cells, "rows": []}
            blocks.append(current)
        elif current is not None and line.strip():
            current["rows"].append(dict(zip(current["header"], cells)))
    best_acc, best_loss, over_time, classes, classes_json, history, predicted = blocks
    assert best_acc["rows"][0]["id"] == str(models["B"]) and best_acc["rows"][0]["accuracy"] == "0.95"
    assert best_loss["rows"][0]["id"] == str(models["A"]) and best_loss["rows"][0]["loss"] == "0.2"
    ids = [r["id"] for r in over_time["rows"]]
    assert ids.index(str(models["A"])) < ids.index(str(models["B"])) < ids.index(str(models["C"]))
    assert [float(r["accuracy"]) for r in classes["rows"]] == pytest.approx([0.8 + 0.02 * k for k in range(10)])
    assert [float(r["accuracy"]) for r in classes_json["rows"]] == pytest.approx([0.8 + 0.02 * k for k in range(10)])
    assert [r["reason"] for r in history["rows"]] == ["first", "lenet5 is steadier"]
    written = {(r["model_id"], r["source"]): r for r in predicted["rows"]}
    assert written[(str(models["C"]), f"{reg['ks']}.raw_predict")]["rows"] == str(N_PREDICT)
    legacy = written[(str(models["A"]), f"{reg['ks']}.raw_legacy")]
    assert legacy["rows"] == legacy["labelled"] == str(N_LEGACY) and 0 <= float(legacy["accuracy"]) <= 1


# ------------------------------------------------------------------------------ MLflow export

MLFLOW_PY = ROOT / ".venv-mlflow" / "bin" / "python"


def test_mlflow_export_loads_and_predicts_in_mlflows_own_env(reg, models, tmp_path):
    """`registry export --format mlflow`, then MLflow's pyfunc loader in .venv-mlflow (no digitforge,
    no Spark): the same probabilities as digitforge.inference on 100 MNIST test images."""
    from digitforge.ingest import idx
    from digitforge.ingest.data_files import dataset_folder

    assert MLFLOW_PY.exists(), "no .venv-mlflow: run `make mlflow-env`"
    folder = dataset_folder("mnist", reg["cfg"]["datasets"]["mnist"]["folder"])
    test_images = idx.read_images(idx.find_split_files(folder, "test")[0])[:100]
    out_dir = tmp_path / "champion-mlflow"
    exported = json.loads(cli(reg, "export", "champion", "--format", "mlflow", str(out_dir), "--json").stdout)
    assert exported["id"] == str(models["C"]) and exported["format"] == "mlflow"
    assert (out_dir / "MLmodel").is_file() and (out_dir / "data" / "model.pt2").is_file()
    assert not list(out_dir.rglob("*.pkl")) and not (out_dir / "code").exists()  # no pickle, no shipped code

    np.save(tmp_path / "images.npy", test_images)
    proc = run([str(MLFLOW_PY), str(ROOT / "tests" / "mlflow_load_check.py"), str(out_dir),
                str(tmp_path / "images.npy"), str(tmp_path / "probabilities.npy")], timeout=300,
               env={"PYTHONPATH": ""})  # nothing of digitforge's on its path
    loaded = last_json(proc.stdout)
    assert set(loaded["absent"]) == {"digitforge", "pyspark", "petastorm", "cassandra"}
    assert loaded["flavors"] == ["python_function", "pytorch"]
    meta = loaded["metadata"]["digitforge"]
    shown = registry_read.show(reg["cfg"], "mnist", models["C"])
    assert meta["id"] == str(models["C"]) and meta["architecture"] == "lenet5"
    assert meta["test_accuracy"] == 0.93 and meta["metrics"]["per_class"]["recall"] == shown["metrics"]["per_class"]["recall"]
    assert meta["config"] == shown["config"] and meta["lineage"] == shown["lineage"]
    assert meta["network_sha256"] == shown["artifacts"]["network"]["sha256"]
    spec = json.loads(loaded["signature"]["inputs"])[0]["tensor-spec"]
    assert spec == {"dtype": "uint8", "shape": [-1, 28, 28]}

    got = np.load(tmp_path / "probabilities.npy")
    champion = registry_read.load_model("champion", dataset="mnist", cfg=reg["cfg"])
    expected = probabilities(champion, test_images.reshape(100, -1))
    assert got.shape == (100, 10) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert (got.argmax(1) == expected.argmax(1)).all()

    # a second export into the same folder is refused, and leaves the first one whole
    again = cli(reg, "export", "champion", "--format", "mlflow", str(out_dir), check=False)
    assert again.returncode == 2 and "exists and is not empty" in again.stdout + again.stderr
    assert (out_dir / "data" / "model.pt2").is_file()
