"""Versioned Parquet snapshots of a dataset's tables, written through Petastorm.

Layout: <root>/<keyspace>/<dataset>/<version>/{train,test}/ (Petastorm datasets) + manifest.json
(snapshot/manifest.py finds them).
manifest.json is written last: a version without it is incomplete and never read, so a failed
convert leaves earlier snapshots as they were.
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np

from digitforge.core.clock import now_iso, stamp
from digitforge.core.progress import progress
from digitforge.core.storage import is_url, to_url


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


def write_snapshot(spark, splits: dict, root: str | Path, dataset: str, source: dict,
                   files_per_split: int = 8, row_group_size_mb: int = 2) -> dict:
    """Write each split DataFrame as a Petastorm dataset; return the manifest. source["keyspace"] (the
    keyspace the rows came from) places the snapshot: each keyspace has its own versions of a dataset."""
    from petastorm.etl.dataset_metadata import materialize_dataset

    from digitforge.snapshot.manifest import snapshot_folder

    version = stamp()
    base = snapshot_folder(root, source["keyspace"], dataset) / version
    schema = unischema()
    counts = {}
    started = time.time()
    try:
        for split, df in progress(list(splits.items()), desc=f"snapshot {version}", unit="split"):
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
        if not is_url(root):
            shutil.rmtree(base, ignore_errors=True)
        raise
    manifest = {
        "dataset": dataset, "version": version, "created": now_iso(),
        "path": str(base), "rows": counts, "source": source, "files_per_split": files_per_split,
        "seconds": round(time.time() - started, 2),
    }
    (base / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


class SnapshotError(ValueError):
    """The tables cannot be snapshotted as they are (a bad row, an empty split); nothing was written."""
