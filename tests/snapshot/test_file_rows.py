"""convert.file_rows: a split larger than files_per_split x file_rows is cut into more files, none holding
more than file_rows rows, each one row group (the unit a writing task buffers and a rank reads at once)."""
import os

import pytest

from conftest import BIN

pytestmark = pytest.mark.integration


def test_no_snapshot_file_holds_more_than_file_rows(tmp_path):
    import pyarrow.parquet as pq

    from digitforge.core.spark import get_spark
    from digitforge.snapshot import shards
    from digitforge.snapshot import write as snapshot

    os.environ.setdefault("PYSPARK_PYTHON", str(BIN / "python"))
    spark = get_spark("digitforge-test-file-rows")
    try:
        rows = [(i, i % 10, bytes([i % 256]) * 784) for i in range(1000)]
        splits = {"train": spark.createDataFrame(rows, "id int, label int, pixels binary"),
                  "test": spark.createDataFrame(rows[:100], "id int, label int, pixels binary")}
        manifest = snapshot.write_snapshot(spark, splits, tmp_path, "mnist", source={"keyspace": "ks", "test": True},
                                           files_per_split=2, file_rows=300)
    finally:
        spark.stop()

    train = sorted((tmp_path / "ks" / "mnist" / manifest["version"] / "train").glob("*.parquet"))
    per_file = [pq.ParquetFile(f).metadata for f in train]
    assert [m.num_rows for m in per_file] and max(m.num_rows for m in per_file) <= 300
    assert sum(m.num_rows for m in per_file) == 1000 == manifest["rows"]["train"]
    assert len(train) == 4  # 2 partitions of 500 rows, each cut into 300 + 200
    assert all(m.num_row_groups == 1 for m in per_file)
    assert shards.row_groups(str(train[0].parent)) == 4
    test = list((tmp_path / "ks" / "mnist" / manifest["version"] / "test").glob("*.parquet"))
    assert len(test) == 2 and manifest["file_rows"] == 300  # under the cap: files_per_split files, as before
