"""The convert job reads tables in the original demo's schema (`id int PRIMARY KEY, label int,
pixels list<int>`), loaded the original way (one INSERT ... JSON per row), as they are: real node,
real spark-submit, keyspaces of this test run's own."""
import json
import os

import numpy as np
import pytest

from conftest import ROOT, last_json, run

pytestmark = pytest.mark.integration
SUBMIT = str(ROOT / "scripts" / "submit.sh")


def load_the_original_way(s, keyspace: str, rows: dict[str, np.ndarray]) -> None:
    s.execute(f"CREATE KEYSPACE {keyspace} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}")
    for table, images in rows.items():
        s.execute(f"CREATE TABLE {keyspace}.{table} (id int PRIMARY KEY, label int, pixels list<int>)")
        for i, pixels in enumerate(images):
            doc = json.dumps({"id": i, "label": i % 10, "pixels": np.asarray(pixels).tolist()})
            s.execute(f"INSERT INTO {keyspace}.{table} JSON '{doc}'")


def flat_images(n, seed):
    return np.random.default_rng(seed).integers(0, 256, (n, 784))


def test_convert_reads_original_demo_tables_as_they_are(cql, tmp_path):
    s, created = cql
    ks = f"it_original_{os.getpid()}"
    created.append(ks)
    train, test = flat_images(300, 1), flat_images(100, 2)
    load_the_original_way(s, ks, {"raw_train": train, "raw_test": test})

    manifest = last_json(run([SUBMIT, "convert", "--keyspace", ks, "--set", f"convert.snapshot_root={tmp_path}",
                              "--set", "convert.files_per_split=2"]).stdout)
    assert manifest["rows"] == {"train": 300, "test": 100}
    assert manifest["source"]["keyspace"] == ks
    assert manifest["path"] == str(tmp_path / ks / "mnist" / manifest["version"])  # filed under its keyspace

    import pyarrow.parquet as pq
    snap = pq.read_table(os.path.join(manifest["path"], "test"), columns=["id", "label", "pixels"]).to_pydict()
    k = snap["id"].index(42)
    assert snap["label"][k] == 2 and snap["pixels"][k] == bytes(test[42].astype(np.uint8))


def test_convert_names_the_row_whose_list_has_the_wrong_length(cql, tmp_path):
    s, created = cql
    ks = f"it_original_bad_{os.getpid()}"
    created.append(ks)
    train = list(flat_images(20, 3))
    train[13] = train[13][:783]
    load_the_original_way(s, ks, {"raw_train": train, "raw_test": flat_images(5, 4)})

    proc = run([SUBMIT, "convert", "--keyspace", ks, "--set", f"convert.snapshot_root={tmp_path}"], check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2
    assert f"{ks}.raw_train, column pixels: row id 13: pixels holds 783 values, expected 784" in output
    assert "no snapshot was written" in output
    assert not list(tmp_path.glob("**/manifest.json"))


def test_ingest_refuses_an_original_demo_keyspace_and_leaves_it_untouched(cql, tmp_path):
    s, created = cql
    ks = f"it_original_ingest_{os.getpid()}"
    created.append(ks)
    load_the_original_way(s, ks, {"raw_train": flat_images(3, 5), "raw_test": flat_images(3, 6)})
    proc = run([SUBMIT, "ingest", "--dataset", "mnist", "--keyspace", ks, "--limit", "10"], check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2
    assert f"{ks}.raw_train: pixels is list<int> (the original demo's layout)" in output
    assert sorted(r.table_name for r in s.execute(
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (ks,))) == ["raw_test", "raw_train"]
