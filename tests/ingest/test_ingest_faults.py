"""Fault drills for ingest (the ingest job run in this process with real Spark, the SSTable writer's JVM
tasks, the connector and the node): a second ingest with --replace (another split of the same file) is
failed for real on one table, and no table loses a row:
- a writer task fails on raw_test (its staged record file is cut mid-record);
- the node refuses raw_test's import (its Data.db cut short after the write; raw_train is already in);
- a connector task fails on raw_test (its staged Parquet is cut short).
Each time a clean re-run then completes the replacement."""
import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, write_csv
from digitforge.ingest import cql_writer, sstable_writer

pytestmark = [pytest.mark.integration, pytest.mark.faults]
TABLES = ("raw_train", "raw_test")


def ingest_job():
    spec = importlib.util.spec_from_file_location("ingest_job", ROOT / "jobs" / "ingest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def rows(s, ks) -> dict:
    return {t: sorted((r.id, r.label, r.pixels) for r in s.execute(f"SELECT id, label, pixels FROM {ks}.{t}"))
            for t in TABLES}


def snapshots_left(ks) -> list:
    return list(Path(os.environ.get("DIGITFORGE_CASSANDRA_HOME", ROOT / "var" / "cassandra"), "data", ks)
                .glob("*/snapshots/digitforge-ingest-*"))


@pytest.fixture
def ingested(cql, tmp_path):
    """A keyspace holding the first split of a labelled CSV, and the job's flags for a second split."""
    s, created = cql
    ks = f"it_ingfault_{os.getpid()}_{len(created)}"
    created.append(ks)
    rng = np.random.default_rng(11)
    images, labels = rng.integers(0, 256, (400, 28, 28)).astype(np.uint8), rng.integers(0, 10, 400).astype(np.uint8)
    path = write_csv(tmp_path / "train.csv", images, labels)

    def flags(writer, seed):
        return ["--csv", str(path), "--keyspace", ks, "--set", f"ingest.writer={writer}",
                "--set", f"ingest.split_seed={seed}", "--set", "ingest.write_partitions=2"]

    return s, ks, flags


def drill(ingested, monkeypatch, writer, inject) -> tuple[dict, dict, int]:
    """First split in, then the second split with --replace failed by `inject`, then again cleanly.
    Returns (rows before, rows after the failure, the failed run's exit code), and checks the re-run."""
    s, ks, flags = ingested
    main = ingest_job()
    assert main(flags(writer, 5)) == 0
    old = rows(s, ks)
    with monkeypatch.context() as m:
        inject(m)
        code = main([*flags(writer, 6), "--replace"])
    failed = rows(s, ks)
    assert main([*flags(writer, 6), "--replace"]) == 0  # a clean re-run completes the replacement
    new = rows(s, ks)
    assert new != old and sum(len(v) for v in new.values()) == 400
    assert not set(r[0] for r in new["raw_train"]) & set(r[0] for r in new["raw_test"])  # no row in both
    return old, failed, code


def test_a_writer_task_failing_on_one_table_changes_no_table(ingested, monkeypatch, caplog):
    real = sstable_writer.stage_records

    def stage_then_cut(batch, folder, files):
        paths = real(batch, folder, files)
        if str(folder).endswith("/raw_test"):  # the task writing this file finds a partial record and fails
            with open(paths[0], "ab") as f:
                f.write(b"\x00\x01\x02")
        return paths

    old, failed, code = drill(ingested, monkeypatch, "sstable",
                              lambda m: m.setattr(sstable_writer, "stage_records", stage_then_cut))
    assert code == 3 and failed == old
    assert "not a whole number of" in caplog.text and "the Spark write (sstable writer) failed" in caplog.text
    assert not snapshots_left(ingested[1])


def test_an_import_the_node_refuses_puts_every_table_back(ingested, monkeypatch, caplog):
    real = sstable_writer.import_sstables
    refused = []

    def cut_then_import(spark, cfg, keyspace, table, folders):
        if table == "raw_test" and not any("/snapshots/" in f for f in folders):
            for data in (p for f in folders for p in Path(f).glob("*-Data.db")):
                data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])  # the node's verify fails
            refused.append(table)
        return real(spark, cfg, keyspace, table, folders)

    old, failed, code = drill(ingested, monkeypatch, "sstable",
                              lambda m: m.setattr(sstable_writer, "import_sstables", cut_then_import))
    assert refused == ["raw_test"] and code == 3
    assert failed == old  # raw_train had been truncated and imported: it is back as it was, and raw_test too
    assert "the node did not import" in caplog.text and "rolled back" in caplog.text
    assert "restored from snapshot" in caplog.text
    assert not snapshots_left(ingested[1])


def test_a_cql_write_failing_on_one_table_empties_nothing(ingested, monkeypatch, caplog):
    real = cql_writer.stage

    def stage_then_cut(batch, folder, files):
        staged = real(batch, folder, files)
        if str(folder).endswith("/raw_test"):
            for part in Path(staged).glob("*.parquet"):
                part.write_bytes(part.read_bytes()[:100])
        return staged

    old, failed, code = drill(ingested, monkeypatch, "cql", lambda m: m.setattr(cql_writer, "stage", stage_then_cut))
    assert code == 3 and "the Spark write (cql writer) failed" in caplog.text
    assert failed["raw_test"] == old["raw_test"]  # never reached: untouched
    old_ids = {r[0] for r in old["raw_train"]}
    assert old_ids <= {r[0] for r in failed["raw_train"]}  # written (upserts), nothing deleted or emptied
