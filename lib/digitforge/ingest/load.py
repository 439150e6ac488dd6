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
import time
import uuid

import numpy as np

from digitforge.core.errors import InputError
from digitforge.core.images import PIXELS
from digitforge.core.schema import KEYSPACE_NAME

log = logging.getLogger(__name__)


class LostRowsError(RuntimeError):
    """Cassandra holds fewer rows after a write than the accounting expects."""


class WriteFailed(RuntimeError):
    """The Spark write of some rows failed (a task, the connector): one line naming the keyspace."""


def write_rows(spark, cfg: dict, batches: list, keyspace: str, writer: str, land) -> tuple[list[dict], float]:
    """Stage every batch and write it to keyspace.<batch.table> with `writer` (sstable: one Spark job for all
    tables; cql: the connector, table by table), the landing (imports, count checks, stale rows) done by
    `land(write_step)` inside it (write_step returns True when every replica took every row). Returns (land's
    reports, the seconds it took)."""
    from py4j.protocol import Py4JJavaError

    from digitforge.core import storage
    from digitforge.ingest import cql_writer, sstable_writer, stream_writer

    icfg = cfg["ingest"]
    # One partition per executor core by default: the SSTable writer then leaves a few large SSTables,
    # which the node takes in without compacting them again straight away.
    partitions = int(icfg["write_partitions"]) or spark.sparkContext.defaultParallelism
    started = time.time()
    folder = storage.join(staging_root(cfg), f"{keyspace}-{uuid.uuid4().hex[:8]}")
    try:
        module = {"sstable": sstable_writer, "stream": stream_writer, "cql": cql_writer}[writer]
        reports = module.write_batches(spark, cfg, batches, keyspace, folder, partitions, land)
    except Py4JJavaError as e:  # a Spark task or job failed: say what, in one line
        cause = str(e.java_exception).splitlines()[0]
        hosts = ",".join(map(str, cfg["cassandra"]["hosts"]))
        raise WriteFailed(f"{keyspace} at cassandra.hosts={hosts}: the Spark write ({writer} writer) failed: "
                          f"{cause}") from None
    finally:
        storage.delete_folder(folder)
    return reports, time.time() - started


def staging_root(cfg: dict) -> str:
    """ingest.staging_dir as a location: a local path (relative: under the project) or a URL (s3://, hdfs://)
    that executors with no shared disk exchange the staged rows and SSTables through."""
    from digitforge.core.config import project_location

    return project_location(cfg["ingest"]["staging_dir"])


# Slices of the token ring scanned at once by read_ids: each a range read that some coordinator serves on its own,
# so a ring's nodes (and this driver) share the work instead of one coordinator paging through the whole table.
ID_SCAN_SLICES = 3
MURMUR3_MIN, MURMUR3_MAX = -2 ** 63, 2 ** 63 - 1


def token_slices(n: int) -> list[tuple[int, int]]:
    """The Murmur3 token ring [MURMUR3_MIN, MURMUR3_MAX] as n contiguous, inclusive, non-overlapping slices. Pure."""
    edges = [MURMUR3_MIN + (2 ** 64 * k) // n for k in range(n)] + [MURMUR3_MAX + 1]
    return [(lo, hi - 1) for lo, hi in zip(edges, edges[1:])]


def read_ids(session, table: str, consistency=None) -> np.ndarray:
    """Every id in a table of the session's keyspace, sorted, at `consistency` (None: the session's,
    cassandra.consistency). Through cassandra-driver, not Spark: a paged scan of one int column, in
    ID_SCAN_SLICES token slices at once (Murmur3 rings; one scan on others), costs well under a second for a
    dataset's 100k rows. Timeouts are retried: a replica that has just died times reads out until the
    coordinators mark it down."""
    from digitforge.core.retrying import Retrying

    return Retrying()(f"reading the ids of {session.keyspace}.{table}", _scan_ids, session, table, consistency)


def _scan_ids(session, table: str, consistency) -> np.ndarray:
    from cassandra.query import SimpleStatement

    if session.cluster.metadata.partitioner.endswith("Murmur3Partitioner"):
        statement = SimpleStatement(f"SELECT id FROM {table} WHERE token(id) >= %s AND token(id) <= %s",
                                    fetch_size=20000, consistency_level=consistency)
        pending = [session.execute_async(statement, s) for s in token_slices(ID_SCAN_SLICES)]
        ids = [np.fromiter((r[0] for r in f.result()), dtype=np.int64) for f in pending]
        return np.sort(np.concatenate(ids))
    rows = session.execute(SimpleStatement(f"SELECT id FROM {table}", fetch_size=20000, consistency_level=consistency))
    return np.sort(np.fromiter((r[0] for r in rows), dtype=np.int64))


def account(table: str, before: np.ndarray, written: np.ndarray, after: np.ndarray, replace: bool = False) -> dict:
    """Expected vs. found rows after writing `written` ids into a table that held `before` (with replace:
    exactly the written ids). Raises LostRowsError when a written id is missing or the table holds fewer
    rows than expected. Pure."""
    expected = len(written) if replace else len(np.union1d(before, written))
    missing = np.setdiff1d(written, after)
    report = {"table": table, "before": int(len(before)), "written": int(len(written)),
              "new": int(len(np.setdiff1d(written, before))), "expected": int(expected), "found": int(len(after))}
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


def write_and_check(spark, cfg: dict, batches: list, keyspace: str, writer: str | None = None,
                    replace: bool = False) -> tuple[list[dict], float]:
    """Write every batch with `writer` (default: writer_choice.choose_writer, and the tables' layout checked for it), then
    check each table against Cassandra: expected (rows before plus new ids; with replace, the new ids only)
    vs. found, both logged. Nothing is emptied before the new rows are written and checked:
    - sstable: every table's SSTables are written and checked first; then, under a node snapshot of every
      target table (landing.all_or_none), replace truncates, all tables are imported and counted; a failure
      puts every table back as it was: all tables land or none.
    - cql and stream (several nodes): every table's rows are written (upserts) and counted; only then, with replace, the stale ids (in
      a table before, not written now) are deleted and the tables counted again. A failed write never
      empties a table: the old rows stay (some overwritten by new rows of the same id) and a re-run completes.
    Returns one report per table (with the writer) and the write seconds."""
    from cassandra import ConsistencyLevel

    from digitforge.core.connection import session
    from digitforge.ingest import landing
    from digitforge.ingest.sstable_writer import check_raw_columns
    from digitforge.ingest.writer_choice import choose_writer

    with session(cfg, keyspace) as s:
        if writer is None:
            writer = choose_writer(cfg, s)
            if writer in ("sstable", "stream"):
                for b in batches:
                    check_raw_columns(s, keyspace, b.table)
        before = {b.table: read_ids(s, b.table) for b in batches}

        def count(exact: bool, on_every_replica: bool = False) -> list[dict]:
            # Rows that every replica took (a stream that reached them all) read the same from any one of
            # them: LOCAL_ONE then checks exactly what cassandra.consistency would, at a third of the ring's
            # work (a range read at LOCAL_QUORUM fetches and merges every row from two replicas).
            level = ConsistencyLevel.LOCAL_ONE if on_every_replica else None
            reports = []
            for b in batches:
                report = account(f"{keyspace}.{b.table}", before[b.table], b.ids, read_ids(s, b.table, level), exact)
                log.info("%s: count check: expected %d rows (%s%d new of %d written), found %d%s", report["table"],
                         report["expected"], "replaced: " if exact else f"{report['before']} before + ",
                         report["new"], report["written"], report["found"],
                         " (read at LOCAL_ONE: every replica took the stream)" if on_every_replica else "")
                reports.append({**report, "writer": writer})
            return reports

        def land_sstables(import_all) -> list[dict]:
            with landing.all_or_none(spark, cfg, s, keyspace, [b.table for b in batches], before):
                if replace:  # only now: every table's new rows are written and checked
                    for b in batches:
                        s.execute(f"TRUNCATE {b.table}")
                        log.info("emptied %s.%s (--replace): its new SSTables are ready", keyspace, b.table)
                import_all()
                return count(replace)

        def land_cql(write_all) -> list[dict]:
            reports = count(False, on_every_replica=write_all() is True)
            if replace:  # every table's new rows are in: now the stale ones go
                for b in batches:
                    delete_ids(s, b.table, np.setdiff1d(before[b.table], b.ids))
                reports = count(True)
            return reports

        reports, seconds = write_rows(spark, cfg, batches, keyspace, writer,
                                      land_sstables if writer == "sstable" else land_cql)
        rows = sum(len(b) for b in batches)
        log.info("%s: wrote %d rows in %.2fs (%.0f rows/s, writer %s)", keyspace, rows, seconds, rows / seconds, writer)
    return reports, seconds


def delete_ids(session, table: str, ids: np.ndarray) -> None:
    """Delete these ids from a table of the session's keyspace (--replace with the CQL writer: the rows a
    new split no longer puts there), many at a time."""
    from cassandra.concurrent import execute_concurrent_with_args

    if len(ids):
        statement = session.prepare(f"DELETE FROM {table} WHERE id = ?")
        execute_concurrent_with_args(session, statement, [(int(i),) for i in ids], concurrency=64, raise_on_first_error=True)
        log.info("deleted %d stale rows from %s (--replace)", len(ids), table)


def prepare_tables(cfg: dict, batches: list, keyspace: str, replace: bool = False) -> str:
    """Everything checked before a row is written: the keyspace name; an original-demo keyspace is refused
    untouched; a new keyspace is created with the whole schema, an existing one must be at the current
    schema (else KeyspaceNotReady: `digitforge schema apply` upgrades it, a job never does); the writer chosen
    (an explicit one that cannot work here fails now). Nothing is emptied here: `--replace` empties nothing
    until the new rows are written (write_and_check). Returns the writer.
    Raises InputError, ConfigError or KeyspaceNotReady (exit 2, nothing written)."""
    from digitforge.core import storage
    from digitforge.core.config import ConfigError
    from digitforge.core.connection import session
    from digitforge.core.cql import apply_schema
    from digitforge.core.tables import require_current
    from digitforge.ingest.sstable_writer import check_raw_columns
    from digitforge.ingest.writer_choice import choose_writer

    if not re.fullmatch(KEYSPACE_NAME, keyspace):
        raise ConfigError(f"{keyspace!r} is not a keyspace name (letters, digits, _; at most 48)")
    if storage.is_url(cfg["ingest"]["staging_dir"]):
        storage.check_reachable(staging_root(cfg), "ingest.staging_dir")
    with session(cfg) as s:
        for b in batches:
            check_table_is_compact(s, keyspace, b.table)
        exists = keyspace in s.cluster.metadata.keyspaces
        writer = choose_writer(cfg, s)  # an explicit writer that cannot work here fails before the schema is made
    if exists:
        require_current(cfg, keyspace)
    else:
        apply_schema(cfg, [keyspace])
    with session(cfg, keyspace) as s:
        if writer in ("sstable", "stream"):
            for b in batches:
                check_raw_columns(s, keyspace, b.table)
    return writer
