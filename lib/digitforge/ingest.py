"""Ingest: images and labels in memory -> rows (id, label, pixels blob) -> Cassandra, via the connector."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from .errors import InputError

log = logging.getLogger(__name__)
ROW_SCHEMA = "id int, label int, pixels binary"


def to_rows(images: np.ndarray, labels: np.ndarray | None, first_id: int = 0) -> pd.DataFrame:
    """One row per image: deterministic ids (first_id + position), label (None when unlabelled),
    pixels as 784 bytes, row-major. Pure: no Spark, no Cassandra."""
    images = np.ascontiguousarray(images, dtype=np.uint8).reshape(len(images), -1)
    if images.shape[1] != 784:
        raise ValueError(f"expected 784 pixels per image, got {images.shape[1]}")
    flat = images.tobytes()
    pixels = [flat[i * 784:(i + 1) * 784] for i in range(len(images))]
    return pd.DataFrame({
        "id": np.arange(first_id, first_id + len(images), dtype=np.int32),
        "label": pd.array(labels, dtype="Int32") if labels is not None else pd.array([None] * len(images), dtype="Int32"),
        "pixels": pixels,
    })


def check_table_is_compact(session, keyspace: str, table: str) -> None:
    """Refuse to write blobs into an original-demo table (pixels list<int>): say what to do instead."""
    meta = session.cluster.metadata.keyspaces.get(keyspace)
    if meta is None or table not in meta.tables:
        raise InputError(f"{keyspace}.{table}", "table does not exist: run `make schema` (digitforge schema apply)")
    ctype = meta.tables[table].columns["pixels"].cql_type
    if ctype != "blob":
        raise InputError(f"{keyspace}.{table}", f"pixels is {ctype} (the original demo's layout); ingest writes "
                         "784-byte blobs. Ingest into another keyspace; convert reads this table as it is.")


def write_rows(spark, rows: pd.DataFrame, keyspace: str, table: str, partitions: int) -> None:
    from .spark import write_cassandra

    df = spark.createDataFrame(rows, schema=ROW_SCHEMA).repartition(partitions)
    write_cassandra(df, keyspace, table)


def count_rows(spark, keyspace: str, table: str) -> int:
    from .spark import cassandra_table

    return cassandra_table(spark, keyspace, table).count()
