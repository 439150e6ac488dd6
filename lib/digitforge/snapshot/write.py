"""Versioned Parquet snapshots of a dataset's tables, written through Petastorm.

Layout: <root>/<keyspace>/<dataset>/<version>/{train,test}/ (Petastorm datasets) + manifest.json
(snapshot/manifest.py finds them).
manifest.json is written last: a version without it is incomplete and never read, so a failed
convert leaves earlier snapshots as they were.
"""
from __future__ import annotations

import logging
import time

import numpy as np

from digitforge.core import storage
from digitforge.core.clock import now_iso, stamp
from digitforge.core.progress import progress


log = logging.getLogger(__name__)


def unischema():
    """The Petastorm schema of a snapshot split: id, label (nullable), pixels (bytes)."""
    from petastorm.codecs import ScalarCodec
    from petastorm.unischema import Unischema, UnischemaField
    from pyspark.sql.types import BinaryType, IntegerType

    return Unischema("DigitImage", [
        UnischemaField("id", np.int32, (), ScalarCodec(IntegerType()), False),
        UnischemaField("label", np.int32, (), ScalarCodec(IntegerType()), True),
        UnischemaField("pixels", np.bytes_, (), ScalarCodec(BinaryType()), False),
    ])


def write_snapshot(spark, splits: dict, root, dataset: str, source: dict,
                   files_per_split: int = 8, row_group_size_mb: int = 2, file_rows: int = 0) -> dict:
    """Write each split DataFrame as a Petastorm dataset; return the manifest. source["keyspace"] (the
    keyspace the rows came from) places the snapshot: each keyspace has its own versions of a dataset.
    file_rows (0: no cap) caps the rows of one file: each of the files_per_split partitions is cut into as many
    files as it needs, so a row group (what a writing task buffers and a rank reads at once) stays the same size
    however large the table."""
    from petastorm.etl.dataset_metadata import materialize_dataset

    from digitforge.snapshot.manifest import SETTING, snapshot_folder, write_manifest

    storage.check_reachable(root, SETTING)  # an unknown scheme or unreachable storage: before any Spark work
    version = stamp()
    base = storage.join(snapshot_folder(root, source["keyspace"], dataset), version)
    schema = unischema()
    counts = {}
    started = time.time()
    try:
        for split, df in progress(list(splits.items()), desc=f"snapshot {version}", unit="split"):
            url = storage.child_url(base, split)
            # Petastorm's metadata goes through the readers' filesystem (its own resolver knows no S3
            # endpoint); the filesystem object travels to the executors pickled.
            fs = storage.petastorm_filesystem(url)
            # At least files_per_split row groups, so that many ranks each get a shard.
            with materialize_dataset(spark, url, schema, row_group_size_mb,
                                     filesystem_factory=None if fs is None else lambda: fs):
                (df.repartition(files_per_split).write.mode("overwrite")
                 .option("maxRecordsPerFile", file_rows).parquet(url))
            counts[split] = spark.read.parquet(url).count()
            log.info("snapshot %s/%s: %d rows -> %s", version, split, counts[split], url)
        empty = [split for split, n in counts.items() if n == 0]
        if empty:
            raise SnapshotError(f"{source['keyspace']}.{source['tables'][empty[0]]} is empty: ingest the dataset first")
    except Exception:
        # Without manifest.json the version is never read; remove the partial files too.
        storage.delete_folder(base)
        raise
    manifest = {
        "dataset": dataset, "version": version, "created": now_iso(),
        "path": base, "rows": counts, "source": source, "files_per_split": files_per_split,
        "file_rows": file_rows,
        "seconds": round(time.time() - started, 2),
    }
    write_manifest(manifest)
    return manifest


class SnapshotError(ValueError):
    """The tables cannot be snapshotted as they are (a bad row, an empty split); nothing was written."""
