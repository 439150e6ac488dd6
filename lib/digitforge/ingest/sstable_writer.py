"""Bulk writes for ingest: Spark tasks write SSTables with Cassandra's own writer, then the node imports them.

No CQL round trip per row or batch: the driver stages the checked rows as fixed-width record files, one
Spark task per file turns its rows into SSTables in token order (`CQLSSTableWriter`, in jvm/bulk, run in
the executor in a class loader of its own over the staged cassandra-all jars), and the node takes the
files in whole through JMX, as `nodetool import` does. The import needs the node to read the task folders,
so this path is for a single node on the same machine (or shared storage); ingest/stream_writer.py streams
the same SSTables to the replicas of a cluster, the connector's CQL writes reach any cluster (ingest.writer,
see ingest/writer_choice.py).
Nothing reaches the table until every task has succeeded: a failed write leaves it as it was.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

from digitforge.core import storage
from digitforge.core.progress import progress
from digitforge.ingest.rows import RAW_COLUMNS, chunks, file_ranges, to_records

log = logging.getLogger(__name__)


class BulkLoadError(RuntimeError):
    """The node did not import some SSTable folders, or could not be asked to (JMX)."""


def create_statement(keyspace: str, table: str) -> str:
    """The raw table's CREATE TABLE, as the SSTable writer needs it."""
    columns = ", ".join(f"{name} {ctype}" + (" PRIMARY KEY" if name == "id" else "") for name, ctype in RAW_COLUMNS)
    return f"CREATE TABLE {keyspace}.{table} ({columns})"


def insert_statement(keyspace: str, table: str) -> str:
    """The raw table's INSERT with bind markers, as the SSTable writer needs it."""
    names = ", ".join(name for name, _ in RAW_COLUMNS)
    return f"INSERT INTO {keyspace}.{table} ({names}) VALUES ({', '.join('?' * len(RAW_COLUMNS))})"


def check_raw_columns(session, keyspace: str, table: str) -> None:
    """Refuse a table whose columns differ from the raw tables' (id int, label int, pixels blob): SSTables
    written for one layout must not be imported into another."""
    from digitforge.core.errors import InputError

    meta = session.cluster.metadata.keyspaces[keyspace].tables[table]
    found = {c: meta.columns[c].cql_type for c in meta.columns}
    if found != dict(RAW_COLUMNS) or [c.name for c in meta.partition_key] != ["id"]:
        raise InputError(f"{keyspace}.{table}", f"columns {found} are not the raw tables' {dict(RAW_COLUMNS)} "
                         "keyed by id; write it with --set ingest.writer=cql")


def stage_records(batch, folder: str, files: int) -> list[str]:
    """The batch's rows as `files` record files of consecutive rows in folder (a local path or a URL: the
    staging area, core/storage.py), built and written a chunk at a time (rows.chunks: memory stays at one
    chunk however large the batch); returns their locations."""
    fs, root = storage.filesystem(folder, "ingest.staging_dir")
    fs.create_dir(root, recursive=True)
    paths = []
    for k, (start, stop) in enumerate(file_ranges(len(batch), files)):
        name = f"part-{k:05d}.rec"
        with fs.open_output_stream(f"{root}/{name}") as f:
            for ids, images, labels in chunks(batch, start, stop):
                f.write(to_records(ids, images, labels))
        paths.append(storage.join(folder, name))
    return paths


def stage_batches(batches: list, folder: str, partitions: int, keyspace: str, task_rows: int) -> tuple[list[str], list[str]]:
    """Every batch staged as record files under folder/rows/<table>: `partitions` of them, or more so that none
    holds over task_rows rows (each file is one Spark task, which holds its rows to sort them: its memory stays
    bounded however large the table). Returns (the files, each file's table), what write_sstables takes. Shared
    by the sstable and stream writers."""
    files, tables = [], []
    for b in progress(batches, desc=f"{keyspace}: staging", unit="table"):
        paths = stage_records(b, storage.join(folder, "rows", b.table), max(partitions, -(-len(b) // task_rows)))
        files += paths
        tables += [b.table] * len(paths)
    return files, tables


def write_sstables(spark, files: list[str], tables: list[str], keyspace: str, out_root, jars_dir) -> list[str]:
    """One Spark task per staged record file (file i holding rows of keyspace.tables[i]) writes its rows as
    SSTables in a folder of its own under out_root, named after the table (files and out_root: local paths or
    URLs of a Hadoop filesystem; for a URL each task writes locally, then copies its folder up), with Cassandra's
    jars from jars_dir (cassandra_jars). Returns the folders."""
    gateway = spark.sparkContext._gateway
    writer = spark._jvm.io.digitforge.bulk.SparkSSTableWriter
    folders = writer.writeRecordFiles(
        spark.sparkContext._jsc.sc(), java_strings(gateway, files), java_strings(gateway, tables),
        java_strings(gateway, [create_statement(keyspace, t) for t in tables]),
        java_strings(gateway, [insert_statement(keyspace, t) for t in tables]),
        keyspace, str(jars_dir), str(out_root))
    return list(folders)


# Set by profiles whose executors run on the packed environment (make dist puts the jars in it): where those
# executors find Cassandra's jars, which the checkout's ingest.cassandra_jars is not.
EXECUTOR_JARS_CONF = "spark.digitforge.cassandraJars"


def cassandra_jars(spark, cfg: dict) -> str:
    """The folder of cassandra-all and its deps as the executors see it: the profile's
    spark.digitforge.cassandraJars, else ingest.cassandra_jars (local mode, or executors that share this path)."""
    from digitforge.core.config import project_path

    return spark.conf.get(EXECUTOR_JARS_CONF, None) or str(project_path(cfg["ingest"]["cassandra_jars"]))


def check_folders(folders: list[str], files: list[str]) -> None:
    """Before any table changes: one SSTable folder came back per staged file, and each holds complete
    SSTables (every component its TOC.txt names is there, the data file not empty)."""
    if len(folders) != len(files):
        raise BulkLoadError(f"{len(files)} record files were staged but {len(folders)} SSTable folders came back")
    for folder in map(Path, folders):
        tocs = list(folder.glob("*-TOC.txt"))
        if not tocs:
            raise BulkLoadError(f"{folder}: no SSTable written (no TOC.txt)")
        for toc in tocs:
            prefix = toc.name[: -len("TOC.txt")]
            missing = [c for c in toc.read_text().split() if not (folder / (prefix + c)).is_file()]
            data = folder / (prefix + "Data.db")
            if missing or not data.is_file() or data.stat().st_size == 0:
                raise BulkLoadError(f"{folder}: SSTable {prefix} is incomplete (missing {missing or ['Data.db']})")


def write_batches(spark, cfg: dict, batches: list, keyspace: str, folder: str, partitions: int,
                  land) -> list[dict]:
    """Every batch (one table each) staged under folder and written as SSTables by one Spark job
    (`partitions` tasks per table), the folders checked; then `land(import_all)` imports them all
    (landing.all_or_none: every table or none). Nothing is imported unless every task succeeded.
    Returns what `land` returns (the count checks)."""
    started = time.time()
    files, tables = stage_batches(batches, folder, partitions, keyspace, int(cfg["ingest"]["task_rows"]))
    staged = time.time()
    folders = write_sstables(spark, files, tables, keyspace, storage.join(folder, "sstables"), cassandra_jars(spark, cfg))
    check_folders(folders, files)
    written = time.time()

    def import_all() -> None:
        for table in progress(list(dict.fromkeys(tables)), desc=f"{keyspace}: importing SSTables", unit="table"):
            import_sstables(spark, cfg, keyspace, table, [f for f in folders if Path(f).name == table])

    reports = land(import_all)
    log.info("%s: staged %.2fs, %d SSTable folders written %.2fs, landed %.2fs", keyspace, staged - started,
             len(folders), written - staged, time.time() - written)
    return reports


def java_strings(gateway, values: list[str]):
    """A Java String[] of values, for py4j calls."""
    array = gateway.new_array(gateway.jvm.java.lang.String, len(values))
    for i, value in enumerate(values):
        array[i] = value
    return array


def import_sstables(spark, cfg: dict, keyspace: str, table: str, folders: list[str]) -> None:
    """The node (cassandra.hosts' one node, JMX on cassandra.jmx_port) verifies the SSTables in these folders and the
    tokens they hold, and moves them into keyspace.table. Raises BulkLoadError naming what it refused."""
    from py4j.protocol import Py4JJavaError

    if not folders:
        return
    from digitforge.core.connection import CREDENTIALS_ENV, CassandraConfigError, credentials, jmx_host

    host, port = jmx_host(cfg), int(cfg["cassandra"]["jmx_port"])
    bulk = spark._jvm.io.digitforge.bulk.SparkSSTableWriter
    creds = credentials()
    bulk.useJmxCredentials(creds.jmx_username, creds.jmx_password)  # None: a node without JMX authentication
    try:
        failed = bulk.importSSTables(host, port, keyspace, table, java_strings(spark.sparkContext._gateway, folders))
    except Py4JJavaError as e:
        if "SecurityException" in str(e.java_exception) or "Authentication failed" in str(e.java_exception):
            raise CassandraConfigError(
                f"JMX at {host}:{port} (cassandra.jmx_port) refused the login of user "
                f"{creds.jmx_username or '(none)'}: set jmx_username/jmx_password in the file named by "
                f"{CREDENTIALS_ENV} ({creds.source})") from None
        raise BulkLoadError(f"{keyspace}.{table}: importing SSTables through JMX at {host}:{port} failed: "
                            f"{e.java_exception}") from None
    if len(failed):
        raise BulkLoadError(f"{keyspace}.{table}: the node did not import {len(failed)} of {len(folders)} SSTable "
                            f"folders ({list(failed)[:3]}); see its system.log")
