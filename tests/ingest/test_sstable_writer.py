"""Pure parts of the SSTable writer path: the staged record layout and the statements the writer is given
(no node needed; the choice of writer: test_writer_choice.py)."""
import numpy as np

from digitforge.ingest import rows as ingest_rows
from digitforge.ingest import sstable_writer as bulk
from digitforge.ingest.sources import Batch


def test_records_are_fixed_width_big_endian_with_minus_one_for_no_label():
    images = np.arange(2 * 784, dtype=np.uint32).astype(np.uint8).reshape(2, 28, 28)
    labelled = ingest_rows.to_records(np.array([7, 300]), images, np.array([3, 9], dtype=np.uint8))
    raw = labelled.tobytes()
    assert ingest_rows.RECORD.itemsize == 4 + 4 + 784 and len(raw) == 2 * 792
    assert raw[:8] == (7).to_bytes(4, "big") + (3).to_bytes(4, "big")
    assert raw[8:792] == images[0].tobytes()
    assert raw[792:800] == (300).to_bytes(4, "big") + (9).to_bytes(4, "big")
    unlabelled = ingest_rows.to_records(np.array([1]), images[:1], None)
    assert unlabelled.tobytes()[4:8] == (-1).to_bytes(4, "big", signed=True)


def test_staged_files_hold_every_record_once_in_order(tmp_path, monkeypatch):
    monkeypatch.setattr(ingest_rows, "CHUNK_ROWS", 2)  # files of several chunks each
    batch = Batch("raw_train", np.arange(10, dtype=np.int32), np.arange(10, dtype=np.uint8)[:, None, None]
                  * np.ones((1, 28, 28), np.uint8), np.arange(10, dtype=np.uint8) % 10, "fixture")
    paths = bulk.stage_records(batch, tmp_path / "rows", files=3)
    back = np.concatenate([np.fromfile(p, dtype=ingest_rows.RECORD) for p in paths])
    assert len(paths) == 3 and back["id"].tolist() == list(range(10)) and back["label"].tolist() == list(range(10))
    assert [r[0, 0] for r in back["pixels"].reshape(10, 28, 28)] == list(range(10))
    few = Batch("raw_test", batch.ids[:2], batch.images[:2], None, "fixture")
    assert len(bulk.stage_records(few, tmp_path / "few", files=8)) == 2  # never an empty file


def test_no_staged_file_holds_more_than_task_rows(tmp_path):
    images = np.zeros((10, 28, 28), np.uint8)
    train = Batch("raw_train", np.arange(10, dtype=np.int32), images, np.zeros(10, np.uint8), "fixture")
    test = Batch("raw_test", np.arange(3, dtype=np.int32), images[:3], np.zeros(3, np.uint8), "fixture")
    files, tables = bulk.stage_batches([train, test], str(tmp_path), partitions=2, keyspace="ks", task_rows=3)
    sizes = [len(np.fromfile(f, dtype=ingest_rows.RECORD)) for f in files]
    assert tables == ["raw_train"] * 4 + ["raw_test"] * 2  # 10 rows need 4 files of <= 3; 3 rows keep 2
    assert max(sizes) <= 3 and sum(sizes) == 13


def test_writer_statements_match_the_raw_tables():
    assert bulk.create_statement("ks", "raw_train") == \
        "CREATE TABLE ks.raw_train (id int PRIMARY KEY, label int, pixels blob)"
    assert bulk.insert_statement("ks", "raw_test") == "INSERT INTO ks.raw_test (id, label, pixels) VALUES (?, ?, ?)"

