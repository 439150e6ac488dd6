"""End to end: the ingest job (real spark-submit, connector and node) on Kaggle CSV files, in keyspaces of
this test run's own: the labelled file is split by ids that a re-run reproduces, the unlabelled one goes to
raw_predict, and a bad file exits non-zero with 0 rows written."""
import os

import numpy as np
import pytest

from conftest import ROOT, last_json, run, write_csv
from digitforge.core import config
from digitforge.ingest import sources

pytestmark = pytest.mark.integration
SUBMIT = str(ROOT / "scripts" / "submit.sh")
TABLES = ("raw_train", "raw_test", "raw_predict")


def ids(s, keyspace, table) -> list[int]:
    return sorted(r.id for r in s.execute(f"SELECT id FROM {keyspace}.{table}"))


def digits(n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28)).astype(np.uint8), rng.integers(0, 10, n).astype(np.uint8)


def test_csv_ingest_splits_reruns_identically_and_fills_raw_predict(cql, tmp_path):
    s, created = cql
    ks = f"it_csv_{os.getpid()}"
    created.append(ks)
    images, labels = digits(500, seed=3)
    train_csv = write_csv(tmp_path / "train.csv", images, labels)
    test_csv = write_csv(tmp_path / "test.csv.gz", digits(120, seed=4)[0], gz=True)
    cmd = [SUBMIT, "ingest", "--csv", str(train_csv), "--csv", str(test_csv), "--keyspace", ks,
           "--set", "ingest.split_ratio=0.8", "--set", "ingest.split_seed=5"]
    first = last_json(run(cmd).stdout)

    in_train = sources.split_mask(labels, 0.8, seed=5, stratify=config.resolve()["ingest"]["stratify"])
    assert ids(s, ks, "raw_train") == np.flatnonzero(in_train).tolist()
    assert ids(s, ks, "raw_test") == np.flatnonzero(~in_train).tolist()
    assert ids(s, ks, "raw_predict") == list(range(120))
    k = int(np.flatnonzero(~in_train)[0])
    row = s.execute(f"SELECT label, pixels FROM {ks}.raw_test WHERE id = %s", (k,)).one()
    assert row.label == labels[k] and row.pixels == images[k].tobytes()
    assert first["rows_written"] == 620
    assert {t["table"]: t["found"] for t in first["tables"]} == {
        f"{ks}.raw_train": int(in_train.sum()), f"{ks}.raw_test": int((~in_train).sum()), f"{ks}.raw_predict": 120}

    again = last_json(run(cmd).stdout)  # same files, same config: the same rows, nothing added
    assert [(t["expected"], t["found"], t["new"]) for t in again["tables"]] == [
        (t["found"], t["found"], 0) for t in first["tables"]]
    assert ids(s, ks, "raw_train") == np.flatnonzero(in_train).tolist()

    # another split of the same file: --replace empties the tables first, so no row sits in both
    run([*cmd[:-1], "ingest.split_seed=6", "--replace"])
    in_train = sources.split_mask(labels, 0.8, seed=6, stratify=config.resolve()["ingest"]["stratify"])
    assert ids(s, ks, "raw_train") == np.flatnonzero(in_train).tolist()
    assert ids(s, ks, "raw_test") == np.flatnonzero(~in_train).tolist()


def test_bad_csv_exits_nonzero_and_writes_nothing(cql, tmp_path):
    from digitforge.core.cql import statements

    s, created = cql
    ks = f"it_csv_bad_{os.getpid()}"
    created.append(ks)
    for stmt in statements(ks):  # the tables exist: the job must leave them empty
        s.execute(stmt)
    path = write_csv(tmp_path / "train.csv", *digits(300, seed=6))
    text = path.read_text().splitlines()
    fields = text[250].split(",")  # line 251 = data row 250: its pixel94 (image row 3, column 10) -> 300
    fields[1 + 3 * 28 + 10] = "300"
    text[250] = ",".join(fields)
    path.write_text("\n".join(text) + "\n")

    proc = run([SUBMIT, "ingest", "--csv", str(path), "--keyspace", ks], check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2
    assert f"{path}, line 251 (data row 250), column pixel94: pixel 300 outside 0-255" in output
    assert "nothing was written (0 rows)" in output
    assert all(ids(s, ks, t) == [] for t in TABLES)


def test_sstable_and_cql_writers_store_the_same_rows_and_an_unusable_sstable_path_writes_nothing(cql, tmp_path):
    s, created = cql
    images, labels = digits(300, seed=8)
    path = write_csv(tmp_path / "train.csv", images, labels)
    stored = {}
    for writer in ("sstable", "cql"):
        ks = f"it_writer_{writer}_{os.getpid()}"
        created.append(ks)
        out = last_json(run([SUBMIT, "ingest", "--csv", str(path), "--keyspace", ks,
                             "--set", f"ingest.writer={writer}"]).stdout)
        assert {t["writer"] for t in out["tables"]} == {writer} and out["rows_written"] == 300
        stored[writer] = {t: sorted((r.id, r.label, r.pixels) for r in s.execute(f"SELECT id, label, pixels FROM {ks}.{t}"))
                          for t in ("raw_train", "raw_test")}
    assert stored["sstable"] == stored["cql"]
    assert len(stored["sstable"]["raw_train"]) == 240 and len(stored["sstable"]["raw_test"]) == 60
    k, label, pixels = stored["sstable"]["raw_test"][0]
    assert (label, pixels) == (labels[k], images[k].tobytes())

    # SSTables asked for where the node cannot import them: a clear error before any write, 0 rows
    ks = f"it_writer_nojmx_{os.getpid()}"
    created.append(ks)
    proc = run([SUBMIT, "ingest", "--csv", str(path), "--keyspace", ks, "--set", "ingest.writer=sstable",
                "--set", "cassandra.jmx_port=1"], check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2
    assert "nothing answers on the node's JMX port 127.0.0.1:1 (cassandra.jmx_port)" in output
    assert "nothing was written (0 rows)" in output
    s.cluster.refresh_schema_metadata()
    assert ks not in s.cluster.metadata.keyspaces  # the writer is chosen before anything is created
