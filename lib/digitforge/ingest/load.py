"""Ingest's load step: the tables checked before anything is written, every batch written with the chosen
writer, then each table counted against what the accounting expects.

Rows are compact: (id int, label int, pixels blob of 784 bytes). The driver stages each batch as a few
files (built without a Python object per row), so the executors read their share in parallel instead of
receiving the whole batch inside one huge task, and the JVM writes it with no Python worker. Three writers
(ingest.writer, chosen by ingest/writer_choice.py): SSTables written by the tasks and imported whole by a
single node on this machine (ingest/sstable_writer.py, from fixed-width record files), the same SSTables
streamed to every replica of a cluster by Cassandra's bulk loader (ingest/stream_writer.py), or the
connector's unlogged batches of many rows for any cluster (ingest/cql_writer.py, from Parquet). Every write is an upsert by id, so writing the
same rows again never duplicates.
"""
from __future__ import annotations

import logging
import re
import shutil
import time
import uuid

import numpy as np

from digitforge.core.errors import InputError
from digitforge.core.images import PIXELS
from digitforge.core.schema import KEYSPACE_NAME

log = logging.getLogger(__name__)


class LostRowsError(RuntimeError):
    """Cassandra holds fewer rows after a write than the accounting expects."""


def write_rows(spark, cfg: dict, batches: list, keyspace: str, writer: str) -> float:
    """Stage every batch and write it to keyspace.<batch.table> with `writer` (sstable: one Spark job for all
    tables; cql: the connector, table by table). Returns the seconds it took."""
    from digitforge.core.config import project_path
    from digitforge.ingest import cql_writer, sstable_writer, stream_writer

    icfg = cfg["ingest"]
    # One partition per executor core by default: the SSTable writer then leaves a few large SSTables,
    # which the node takes in without compacting them again straight away.
    partitions = int(icfg["write_partitions"]) or spark.sparkContext.defaultParallelism
    started = time.time()
    folder = project_path(icfg["staging_dir"]) / f"{keyspace}-{uuid.uuid4().hex[:8]}"
    try:
        module = {"sstable": sstable_writer, "stream": stream_writer, "cql": cql_writer}[writer]
        module.write_batches(spark, cfg, batches, keyspace, folder, partitions)
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
                         f"{PIXELS}-byte blobs. Ingest into another keyspace; convert reads this table as it is.")


def write_and_check(spark, cfg: dict, batches: list, keyspace: str, writer: str | None = None) -> tuple[list[dict], float]:
    """Write every batch with `writer` (default: writer_choice.choose_writer, and the tables' layout checked for it),
    then check each table against Cassandra: expected (rows before plus new ids) vs. found, both logged.
    Returns one report per table (with the writer) and the write seconds."""
    from digitforge.core.connection import session
    from digitforge.ingest.sstable_writer import check_raw_columns
    from digitforge.ingest.writer_choice import choose_writer

    with session(cfg, keyspace) as s:
        if writer is None:
            writer = choose_writer(cfg, s)
            if writer in ("sstable", "stream"):
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


def prepare_tables(cfg: dict, batches: list, keyspace: str, replace: bool = False) -> str:
    """Everything checked before a row is written: the keyspace name; an original-demo keyspace is refused
    untouched; the schema is created where missing (never altered); the writer chosen (an explicit one that
    cannot work here fails now); then, with `replace`, the target tables emptied. Returns the writer.
    Raises InputError or ConfigError (exit 2, nothing written)."""
    from digitforge.core.config import ConfigError
    from digitforge.core.connection import session
    from digitforge.core.cql import apply_schema
    from digitforge.ingest.sstable_writer import check_raw_columns
    from digitforge.ingest.writer_choice import choose_writer

    if not re.fullmatch(KEYSPACE_NAME, keyspace):
        raise ConfigError(f"{keyspace!r} is not a keyspace name (letters, digits, _; at most 48)")
    with session(cfg) as s:
        for b in batches:
            check_table_is_compact(s, keyspace, b.table)
        writer = choose_writer(cfg, s)  # an explicit writer that cannot work here fails before the schema is made
    apply_schema(cfg, [keyspace])
    with session(cfg, keyspace) as s:
        if writer in ("sstable", "stream"):
            for b in batches:
                check_raw_columns(s, keyspace, b.table)
        if replace:
            for b in batches:
                s.execute(f"TRUNCATE {b.table}")
                log.info("emptied %s.%s (--replace)", keyspace, b.table)
    return writer
