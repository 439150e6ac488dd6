"""Versioned Parquet snapshots of a dataset's tables, written through Petastorm.

Layout: <root>/<dataset>/<version>/{train,test}/ (Petastorm datasets) + manifest.json.
manifest.json is written last: a version without it is incomplete and never read, so a failed
convert leaves earlier snapshots as they were.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from digitforge.core.errors import InputError
from digitforge.ingest.idx import PIXELS

log = logging.getLogger(__name__)


def unischema():
    from petastorm.codecs import ScalarCodec
    from petastorm.unischema import Unischema, UnischemaField
    from pyspark.sql.types import BinaryType, IntegerType

    return Unischema("DigitImage", [
        UnischemaField("id", np.int32, (), ScalarCodec(IntegerType()), False),
        UnischemaField("label", np.int32, (), ScalarCodec(IntegerType()), True),
        UnischemaField("pixels", np.bytes_, (), ScalarCodec(BinaryType()), False),
    ])


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


def read_images(spark, keyspace: str, table: str):
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


def new_version() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")


def to_url(path: str | Path) -> str:
    s = str(path)
    return s if "://" in s else "file://" + os.path.abspath(s)


def write_snapshot(spark, splits: dict, root: str | Path, dataset: str, source: dict,
                   files_per_split: int = 8, row_group_size_mb: int = 2) -> dict:
    """Write each split DataFrame as a Petastorm dataset; return the manifest."""
    from petastorm.etl.dataset_metadata import materialize_dataset

    version = new_version()
    base = Path(root) / dataset / version
    schema = unischema()
    counts = {}
    started = time.time()
    try:
        for split, df in splits.items():
            url = to_url(base / split)
            # At least files_per_split row groups, so that many ranks each get a shard.
            with materialize_dataset(spark, url, schema, row_group_size_mb):
                df.repartition(files_per_split).write.mode("overwrite").parquet(url)
            counts[split] = spark.read.parquet(url).count()
            log.info("snapshot %s/%s: %d rows -> %s", version, split, counts[split], url)
        empty = [split for split, n in counts.items() if n == 0]
        if empty:
            raise SnapshotError(f"{source['keyspace']}.{source['tables'][empty[0]]} is empty: ingest the dataset first")
    except Exception:
        # Without manifest.json the version is never read; remove the partial files too.
        if "://" not in str(root):
            shutil.rmtree(base, ignore_errors=True)
        raise
    manifest = {
        "dataset": dataset, "version": version, "created": datetime.now(timezone.utc).isoformat(),
        "path": str(base), "rows": counts, "source": source, "files_per_split": files_per_split,
        "seconds": round(time.time() - started, 2),
    }
    (base / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


class SnapshotError(ValueError):
    """The tables cannot be snapshotted as they are (a bad row, an empty split); nothing was written."""


def take(spark, cfg: dict, dataset: str, keyspace: str) -> dict:
    """A fresh snapshot of a keyspace's raw_train and raw_test (the convert and retrain jobs)."""
    from digitforge.core.config import project_path
    from digitforge.core.errors import input_error_in

    cc = cfg["convert"]
    splits = {"train": read_images(spark, keyspace, "raw_train"), "test": read_images(spark, keyspace, "raw_test")}
    try:
        return write_snapshot(spark, splits, project_path(cc["snapshot_root"]), dataset,
                              source={"keyspace": keyspace, "tables": {"train": "raw_train", "test": "raw_test"}},
                              files_per_split=cc["files_per_split"], row_group_size_mb=cc["row_group_size_mb"])
    except Exception as e:  # a bad row of an original-demo table fails its Spark task
        problem = input_error_in(e)
        if problem is None:
            raise
        raise SnapshotError(f"{problem}; no snapshot was written") from None


def resolve(root: str | Path, dataset: str, version: str = "latest") -> dict:
    """The manifest of a snapshot version (`latest`: the newest complete one)."""
    folder = Path(root) / dataset
    if version == "latest":
        done = sorted(p.parent.name for p in folder.glob("*/manifest.json"))
        if not done:
            raise FileNotFoundError(f"no complete snapshot of {dataset} under {folder}: run the convert job first")
        version = done[-1]
    path = folder / version / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"snapshot {version} of {dataset} not found or incomplete ({path} missing)")
    return json.loads(path.read_text())
