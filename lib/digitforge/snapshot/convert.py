"""Convert: a keyspace's raw tables (784-byte blobs, or the original demo's `pixels list<int>`) read by
Spark -> a new snapshot version (snapshot/write.py)."""
from __future__ import annotations

import logging

import numpy as np

from digitforge.core.errors import InputError
from digitforge.core.images import PIXELS
from digitforge.snapshot.write import SnapshotError, write_snapshot

log = logging.getLogger(__name__)


def legacy_to_blob(table: str):
    """mapInPandas function for the original demo's rows (pixels list<int>) -> 784-byte blobs, checked.
    A bad row fails the Spark task with an InputError naming the table, the row's id and the column."""

    def convert(batches):
        for pdf in batches:
            out = []
            for rid, pixels in zip(pdf["id"], pdf["pixels"]):
                arr = np.asarray(pixels if pixels is not None else [], dtype=np.int64)
                if arr.size != PIXELS:
                    raise InputError(table, f"row id {rid}: pixels holds {arr.size} values, expected {PIXELS}", column="pixels")
                if arr.min() < 0 or arr.max() > 255:
                    raise InputError(table, f"row id {rid}: pixel value {arr[(arr < 0) | (arr > 255)][0]} outside 0-255",
                                     column="pixels")
                out.append(arr.astype(np.uint8).tobytes())
            yield pdf.assign(pixels=out)

    return convert


def read_raw_table(spark, keyspace: str, table: str):
    """A raw table as (id int, label int, pixels binary), whether pixels is a blob or the original
    demo's list<int>."""
    from pyspark.sql.types import ArrayType, BinaryType

    from digitforge.core.spark import cassandra_table

    df = cassandra_table(spark, keyspace, table).select("id", "label", "pixels")
    ptype = df.schema["pixels"].dataType
    if isinstance(ptype, BinaryType):
        return df
    if isinstance(ptype, ArrayType):
        log.info("%s.%s stores pixels as %s (original demo layout): converting to blobs", keyspace, table, ptype.simpleString())
        return df.mapInPandas(legacy_to_blob(f"{keyspace}.{table}"), schema="id int, label int, pixels binary")
    raise ValueError(f"{keyspace}.{table}: unsupported pixels column type {ptype.simpleString()}")


def take(spark, cfg: dict, dataset: str, keyspace: str) -> dict:
    """A fresh snapshot of a keyspace's raw_train and raw_test (the convert and retrain jobs)."""
    from digitforge.core.config import project_location
    from digitforge.core.errors import input_error_in

    cc = cfg["convert"]
    splits = {"train": read_raw_table(spark, keyspace, "raw_train"), "test": read_raw_table(spark, keyspace, "raw_test")}
    try:
        return write_snapshot(spark, splits, project_location(cc["snapshot_root"]), dataset,
                              source={"keyspace": keyspace, "tables": {"train": "raw_train", "test": "raw_test"}},
                              files_per_split=cc["files_per_split"], row_group_size_mb=cc["row_group_size_mb"], file_rows=cc["file_rows"])
    except Exception as e:  # a bad row of an original-demo table fails its Spark task
        problem = input_error_in(e)
        if problem is None:
            raise
        raise SnapshotError(f"{problem}; no snapshot was written") from None
