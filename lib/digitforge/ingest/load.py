"""Ingest: checked batches of rows -> Cassandra raw tables through Spark, with accounting.

Rows are compact: (id int, label int, pixels blob of 784 bytes). The driver stages each batch as a few
files (built without a Python object per row), so the executors read their share in parallel instead of
receiving the whole batch inside one huge task, and the JVM writes it with no Python worker. Two writers
(ingest.writer): SSTables written by the tasks and imported whole by a node on this machine
(digitforge.bulk, from fixed-width record files), or the connector's unlogged batches of many rows for any
cluster (from Parquet). Every write is an upsert by id, so writing the same rows again never duplicates.
"""
from __future__ import annotations

import logging
import shutil
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from digitforge.core.errors import InputError
from digitforge.ingest.idx import PIXELS

log = logging.getLogger(__name__)
ROW_SCHEMA = "id int, label int, pixels binary"


class LostRowsError(RuntimeError):
    """Cassandra holds fewer rows after a write than the accounting expects."""


def to_rows(images: np.ndarray, labels: np.ndarray | None, first_id: int = 0) -> pd.DataFrame:
    """One row per image: deterministic ids (first_id + position), label (None when unlabelled),
    pixels as 784 bytes, row-major. Pure: no Spark, no Cassandra."""
    images = np.ascontiguousarray(images, dtype=np.uint8).reshape(len(images), -1)
    if images.shape[1] != PIXELS:
        raise ValueError(f"expected {PIXELS} pixels per image, got {images.shape[1]}")
    flat = images.tobytes()
    pixels = [flat[i * PIXELS:(i + 1) * PIXELS] for i in range(len(images))]
    return pd.DataFrame({
        "id": np.arange(first_id, first_id + len(images), dtype=np.int32),
        "label": pd.array(labels, dtype="Int32") if labels is not None else pd.array([None] * len(images), dtype="Int32"),
        "pixels": pixels,
    })


def to_arrow(ids: np.ndarray, images: np.ndarray, labels: np.ndarray | None):
    """The rows as an Arrow table (id int32, label int32 or null, pixels binary): the pixel column's
    values are the images' own bytes, cut every 784 bytes by an offsets array. Pure."""
    import pyarrow as pa

    n = len(ids)
    flat = np.ascontiguousarray(images, dtype=np.uint8).reshape(n, -1)
    if flat.shape[1] != PIXELS:
        raise ValueError(f"expected {PIXELS} pixels per image, got {flat.shape[1]}")
    offsets = np.arange(0, PIXELS * (n + 1), PIXELS, dtype=np.int32)
    pixels = pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(flat)])
    label = pa.array(labels.astype(np.int32)) if labels is not None else pa.nulls(n, pa.int32())
    return pa.table({"id": pa.array(np.asarray(ids, dtype=np.int32)), "label": label, "pixels": pixels})


def stage(rows, folder: Path, files: int) -> Path:
    """Write the rows as `files` uncompressed Parquet files (one row group each) under a new folder."""
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=False)
    n = rows.num_rows
    files = max(1, min(files, n))
    for k in range(files):
        start, stop = k * n // files, (k + 1) * n // files
        pq.write_table(rows.slice(start, stop - start), folder / f"part-{k:05d}.parquet", compression="none")
    return folder


def output_options(icfg: dict) -> dict[str, str]:
    """Connector write settings for one write (spark.cassandra.output.*), from the `ingest:` config.
    Unlogged batches of many rows cut requests ~40x; grouped by replica set they stay correct on a
    cluster (on one node every row shares the replica set). Keep batches under the node's
    batch_size_warn_threshold (64 KiB here)."""
    return {
        "spark.cassandra.output.batch.grouping.key": str(icfg["batch_grouping_key"]),
        "spark.cassandra.output.batch.size.bytes": str(icfg["batch_size_bytes"]),
        "spark.cassandra.output.concurrent.writes": str(icfg["concurrent_writes"]),
    }


def write_rows(spark, cfg: dict, batches: list, keyspace: str, writer: str) -> float:
    """Stage every batch and write it to keyspace.<batch.table> with `writer` (sstable: one Spark job for all
    tables; cql: the connector, table by table). Returns the seconds it took."""
    from digitforge.ingest import sstable_writer as bulk
    from digitforge.core.config import project_path
    from digitforge.core.spark import CASSANDRA_FORMAT

    icfg = cfg["ingest"]
    # One partition per executor core by default: the SSTable writer then leaves a few large SSTables,
    # which the node takes in without compacting them again straight away.
    partitions = int(icfg["write_partitions"]) or spark.sparkContext.defaultParallelism
    started = time.time()
    folder = project_path(icfg["staging_dir"]) / f"{keyspace}-{uuid.uuid4().hex[:8]}"
    try:
        if writer == "sstable":
            bulk.write_batches(spark, cfg, batches, keyspace, folder, partitions)
        else:
            for b in batches:
                staged = stage(to_arrow(b.ids, b.images, b.labels), folder / b.table, partitions)
                (spark.read.schema(ROW_SCHEMA).parquet(str(staged)).write.format(CASSANDRA_FORMAT)
                 .options(keyspace=keyspace, table=b.table, **output_options(icfg)).mode("append").save())
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return time.time() - started


def read_ids(session, table: str) -> np.ndarray:
    """Every id in a table of the session's keyspace, sorted. Through cassandra-driver, not Spark: a
    single paged scan of one int column costs well under a second for a dataset's 100k rows."""
    from cassandra.query import SimpleStatement

    rows = session.execute(SimpleStatement(f"SELECT id FROM {table}", fetch_size=20000))
    return np.sort(np.fromiter((r[0] for r in rows), dtype=np.int64))


def account(table: str, before: np.ndarray, written: np.ndarray, after: np.ndarray) -> dict:
    """Expected vs. found rows after writing `written` ids into a table that held `before`.
    Raises LostRowsError when a written id is missing or the table holds fewer rows than expected. Pure."""
    expected = len(np.union1d(before, written))
    missing = np.setdiff1d(written, after)
    report = {"table": table, "before": int(len(before)), "written": int(len(written)),
              "new": int(expected - len(before)), "expected": int(expected), "found": int(len(after))}
    if missing.size or len(after) < expected:
        raise LostRowsError(f"{table}: expected {expected} rows, found {len(after)}; {missing.size} written ids "
                            f"are missing (first: {missing[:5].tolist()})")
    if len(after) > expected:
        log.warning("%s: found %d rows, %d more than expected: another writer is using this table",
                    table, len(after), len(after) - expected)
    return report


def check_table_is_compact(session, keyspace: str, table: str) -> None:
    """Refuse to write blobs into an original-demo table (pixels list<int>): say what to do instead.
    A table that does not exist yet is fine: the schema creates it."""
    meta = session.cluster.metadata.keyspaces.get(keyspace)
    if meta is None or table not in meta.tables:
        return
    ctype = meta.tables[table].columns["pixels"].cql_type
    if ctype != "blob":
        raise InputError(f"{keyspace}.{table}", f"pixels is {ctype} (the original demo's layout); ingest writes "
                         "784-byte blobs. Ingest into another keyspace; convert reads this table as it is.")


def write_and_check(spark, cfg: dict, batches: list, keyspace: str, writer: str | None = None) -> tuple[list[dict], float]:
    """Write every batch with `writer` (default: bulk.choose_writer, and the tables' layout checked for it),
    then check each table against Cassandra: expected (rows before plus new ids) vs. found, both logged.
    Returns one report per table (with the writer) and the write seconds."""
    from digitforge.ingest.sstable_writer import check_raw_columns, choose_writer
    from digitforge.core.cql import session

    with session(cfg, keyspace) as s:
        if writer is None:
            writer = choose_writer(cfg, s)
            if writer == "sstable":
                for b in batches:
                    check_raw_columns(s, keyspace, b.table)
        before = {b.table: read_ids(s, b.table) for b in batches}
        seconds = write_rows(spark, cfg, batches, keyspace, writer)
        rows = sum(len(b) for b in batches)
        log.info("%s: wrote %d rows in %.2fs (%.0f rows/s, writer %s)", keyspace, rows, seconds, rows / seconds, writer)
        reports = []
        for b in batches:
            report = account(f"{keyspace}.{b.table}", before[b.table], b.ids, read_ids(s, b.table))
            log.info("%s: count check: expected %d rows (%d before + %d new of %d written), found %d", report["table"],
                     report["expected"], report["before"], report["new"], report["written"], report["found"])
            reports.append({**report, "writer": writer})
    return reports, seconds
