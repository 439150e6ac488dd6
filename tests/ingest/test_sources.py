"""Pure parts of ingest: the CSV split, the batches each source makes, the Arrow rows, the accounting."""
import numpy as np
import pytest

from conftest import write_csv
from digitforge.core.config import ConfigError
from digitforge.core.errors import InputError
from digitforge.ingest import cql_writer
from digitforge.ingest import load as ingest
from digitforge.ingest import rows as ingest_rows
from digitforge.ingest import sources


def labelled(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28)).astype(np.uint8), rng.integers(0, 10, n).astype(np.uint8)


def test_split_is_seeded_sized_and_stratified():
    labels = np.repeat(np.arange(10), [50, 30, 20, 100, 10, 40, 60, 70, 80, 40])
    mask = sources.split_mask(labels, 0.8, seed=7, stratify=True)
    np.testing.assert_array_equal(mask, sources.split_mask(labels, 0.8, seed=7, stratify=True))
    assert not np.array_equal(mask, sources.split_mask(labels, 0.8, seed=8, stratify=True))
    for c in range(10):  # every class keeps 80% of its rows in training
        assert mask[labels == c].sum() == round(0.8 * (labels == c).sum())
    plain = sources.split_mask(labels, 0.75, seed=7, stratify=False)
    assert plain.sum() == 375


def test_labelled_csv_splits_by_row_ids_and_reruns_identically(tmp_path):
    images, labels = labelled(200)
    path = write_csv(tmp_path / "train.csv", images, labels)
    train, test = sources.from_csv([path], ratio=0.8, seed=1, stratify=True)
    assert (train.table, test.table) == ("raw_train", "raw_test")
    assert len(train) + len(test) == 200 and abs(len(train) - 160) <= 5
    assert np.intersect1d(train.ids, test.ids).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train.ids, test.ids])), np.arange(200))
    np.testing.assert_array_equal(test.images, images[test.ids])  # id = data row - 1
    np.testing.assert_array_equal(test.labels, labels[test.ids])
    again, _ = sources.from_csv([path], ratio=0.8, seed=1, stratify=True)
    np.testing.assert_array_equal(again.ids, train.ids)


def test_unlabelled_csv_goes_to_raw_predict_and_limit_applies(tmp_path):
    path = write_csv(tmp_path / "test.csv", labelled(30)[0])
    (predict,) = sources.from_csv([path], ratio=0.8, seed=1, stratify=True, limit=12)
    assert predict.table == "raw_predict" and predict.labels is None and predict.ids.tolist() == list(range(12))


def test_two_labelled_csvs_are_refused(tmp_path):
    a = write_csv(tmp_path / "a.csv", *labelled(5))
    b = write_csv(tmp_path / "b.csv", *labelled(5, seed=1))
    with pytest.raises(InputError, match=r"b.csv: a second labelled CSV"):
        sources.from_csv([a, b], ratio=0.8, seed=1, stratify=True)


def test_split_ratio_is_checked(tmp_path):
    with pytest.raises(ConfigError, match="split_ratio"):
        sources.from_csv([tmp_path / "x.csv"], ratio=1.5, seed=1, stratify=True)


def test_idx_keeps_canonical_splits(make_idx_dataset):
    train, test = sources.from_idx(make_idx_dataset(n_train=40, n_test=20), limit=30)
    assert (train.table, len(train), test.table, len(test)) == ("raw_train", 30, "raw_test", 20)
    assert train.ids.tolist() == list(range(30))


def test_arrow_rows_hold_the_image_bytes_without_copies_per_row():
    images, labels = labelled(5)
    rows = ingest_rows.to_arrow(np.array([7, 3, 9, 1, 2]), images, labels)
    assert rows.column_names == ["id", "label", "pixels"]
    assert rows.column("id").to_pylist() == [7, 3, 9, 1, 2]
    assert rows.column("label").to_pylist() == labels.tolist()
    assert rows.column("pixels")[3].as_py() == images[3].tobytes()
    assert ingest_rows.to_arrow(np.arange(5), images, None).column("label").null_count == 5


def test_staged_parquet_splits_rows_into_files_of_chunks(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    monkeypatch.setattr(ingest_rows, "CHUNK_ROWS", 2)
    images, labels = labelled(10)
    folder = cql_writer.stage(sources.Batch("raw_train", np.arange(10, dtype=np.int32), images, labels, "fixture"),
                              tmp_path / "s", files=4)
    parts = sorted(folder.glob("*.parquet"))
    assert len(parts) == 4 and [pq.ParquetFile(p).num_row_groups for p in parts] == [1, 2, 1, 2]  # 2, 3, 2, 3 rows
    back = pq.read_table(folder)
    assert back.column("id").to_pylist() == list(range(10))
    assert back.column("pixels")[7].as_py() == images[7].tobytes()


def rss_file_kib() -> int:
    """This process's resident pages of mapped files (/proc/self/status RssFile)."""
    status = open("/proc/self/status").read()
    return int(status.split("RssFile:")[1].split()[0])


def test_chunks_cover_the_rows_once_and_give_back_mapped_pages(tmp_path):
    from conftest import write_idx
    from digitforge.ingest import idx

    images = np.random.default_rng(3).integers(0, 256, (20000, 28, 28)).astype(np.uint8)  # 15.7 MB
    path = write_idx(tmp_path / "i-idx3-ubyte", images, 2051, gz=False)
    mapped = idx.read_images(path)
    assert not mapped.flags.writeable  # a read-only mapping of the file, not a copy
    batch = sources.Batch("raw_train", np.arange(20000, dtype=np.int32), mapped, None, str(path))
    before, seen = rss_file_kib(), []
    for ids, chunk, labels in ingest_rows.chunks(batch, 100, 20000, rows=1000):
        assert labels is None
        seen.append((ids.copy(), int(chunk.astype(np.int64).sum())))  # every page of the chunk read
    assert rss_file_kib() - before < 4096  # one chunk's pages at most, not the 15 MiB read
    assert np.concatenate([i for i, _ in seen]).tolist() == list(range(100, 20000))
    assert sum(t for _, t in seen) == int(images[100:].astype(np.int64).sum())


def test_accounting_expects_old_plus_new_rows_and_fails_on_loss():
    before, written = np.arange(0, 50), np.arange(40, 100)
    report = ingest.account("ks.t", before, written, after=np.arange(0, 100))
    assert (report["expected"], report["found"], report["new"]) == (100, 100, 50)
    with pytest.raises(ingest.LostRowsError, match=r"expected 100 rows, found 99; 1 written ids are missing \(first: \[77\]\)"):
        ingest.account("ks.t", before, written, after=np.setdiff1d(np.arange(100), [77]))


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_token_slices_cover_the_murmur3_ring_once(n):
    slices = ingest.token_slices(n)
    assert len(slices) == n
    assert slices[0][0] == -2 ** 63 and slices[-1][1] == 2 ** 63 - 1
    assert all(lo <= hi for lo, hi in slices)
    assert all(prev[1] + 1 == nxt[0] for prev, nxt in zip(slices, slices[1:]))  # no gap, no overlap


def test_input_error_in_finds_the_message_inside_a_task_failure():
    from digitforge.core.errors import input_error_in

    text = ("An exception was thrown from the Python worker.\nTraceback (most recent call last):\n  File ...\n"
            "digitforge.core.errors.InputError: ks.raw_train, column pixels: row id 13: pixels holds 783 values, expected 784\n")
    assert input_error_in(RuntimeError(text)) == "ks.raw_train, column pixels: row id 13: pixels holds 783 values, expected 784"
    assert input_error_in(RuntimeError("out of memory")) is None
