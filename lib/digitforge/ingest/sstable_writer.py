"""Bulk writes for ingest: Spark tasks write SSTables with Cassandra's own writer, then the node imports them.

No CQL round trip per row or batch: the driver stages the checked rows as fixed-width record files, one
Spark task per file turns its rows into SSTables in token order (`CQLSSTableWriter`, in jvm/bulk, run in
the executor in a class loader of its own over the staged cassandra-all jars), and the node takes the
files in whole through JMX, as `nodetool import` does. The import needs the node to read the task folders,
so this path is for a node on the same machine (or shared storage); the connector's CQL writes are the path
for a remote cluster (ingest.writer, see `choose_writer`).
Nothing reaches the table until every task has succeeded: a failed write leaves it as it was.
"""
from __future__ import annotations

import ipaddress
import logging
import socket
import time
from pathlib import Path

import numpy as np

from digitforge.core.progress import progress
from digitforge.ingest.rows import RAW_COLUMNS, to_records

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


def is_local_host(host: str) -> bool:
    """True when host is this machine (a loopback address, or a name that resolves to one)."""
    try:
        return all(ipaddress.ip_address(info[4][0]).is_loopback for info in socket.getaddrinfo(host, None))
    except (OSError, ValueError):
        return False


def storage_mode(session) -> str:
    """The node's storage_compatibility_mode (NONE, UPGRADING, CASSANDRA_4), from its settings table."""
    row = session.execute("SELECT value FROM system_views.settings WHERE name = 'storage_compatibility_mode'").one()
    return row.value if row else "unknown"


def jmx_answers(host: str, port: int, timeout: float = 2.0) -> bool:
    """True when something accepts connections on the node's JMX port (needed to import SSTables)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def choose_writer(cfg: dict, session) -> str:
    """`sstable` or `cql`, from ingest.writer (auto | sstable | cql). The SSTable path needs the node to read
    the task folders (it runs on this machine), to answer on its JMX port (cassandra.jmx_port) and to take
    the current SSTable format (its storage_compatibility_mode is NONE): auto falls back to the connector's
    CQL writes, saying why, and an explicit `sstable` that cannot work is an error, before anything is written."""
    from digitforge.core.config import ConfigError

    writer = cfg["ingest"]["writer"]
    if writer not in ("auto", "sstable", "cql"):
        raise ConfigError(f"ingest.writer must be auto, sstable or cql, got {writer!r}")
    if writer == "cql":
        return writer
    hosts, jmx_port, problem = cfg["cassandra"]["hosts"], int(cfg["cassandra"]["jmx_port"]), None
    from digitforge.core.connection import jmx_host

    host = jmx_host(cfg)
    if len(hosts) > 1:
        problem = f"cassandra.hosts names {len(hosts)} nodes: a JMX import puts every row on one node only"
    elif not is_local_host(str(hosts[0])):
        problem = f"cassandra.hosts {hosts[0]} is not this machine: the node cannot read SSTables written here"
    elif not jmx_answers(host, jmx_port):
        problem = f"nothing answers on the node's JMX port {host}:{jmx_port} (cassandra.jmx_port) to import SSTables"
    elif (mode := storage_mode(session)) != "NONE":
        problem = f"the node's storage_compatibility_mode is {mode}: it imports current-format SSTables only in NONE"
    if problem is None:
        return "sstable"
    if writer == "sstable":
        raise ConfigError(f"ingest.writer=sstable: {problem}; use --set ingest.writer=cql")
    log.info("ingest.writer=auto: %s; writing through CQL (the connector)", problem)
    return "cql"


def check_raw_columns(session, keyspace: str, table: str) -> None:
    """Refuse a table whose columns differ from the raw tables' (id int, label int, pixels blob): SSTables
    written for one layout must not be imported into another."""
    from digitforge.core.errors import InputError

    meta = session.cluster.metadata.keyspaces[keyspace].tables[table]
    found = {c: meta.columns[c].cql_type for c in meta.columns}
    if found != dict(RAW_COLUMNS) or [c.name for c in meta.partition_key] != ["id"]:
        raise InputError(f"{keyspace}.{table}", f"columns {found} are not the raw tables' {dict(RAW_COLUMNS)} "
                         "keyed by id; write it with --set ingest.writer=cql")


def stage_records(records: np.ndarray, folder: Path, files: int) -> list[str]:
    """Write the records as `files` files of consecutive rows under folder (created); returns their paths."""
    folder.mkdir(parents=True, exist_ok=False)
    files = max(1, min(files, len(records)))
    paths = []
    for k in range(files):
        path = folder / f"part-{k:05d}.rec"
        records[k * len(records) // files:(k + 1) * len(records) // files].tofile(path)
        paths.append(str(path))
    return paths


def write_sstables(spark, files: list[str], tables: list[str], keyspace: str, out_root, cassandra_jars) -> list[str]:
    """One Spark task per staged record file (file i holding rows of keyspace.tables[i]) writes its rows as
    SSTables in a folder of its own under out_root, named after the table. Returns the folders."""
    gateway = spark.sparkContext._gateway
    writer = spark._jvm.io.digitforge.bulk.SparkSSTableWriter
    folders = writer.writeRecordFiles(
        spark.sparkContext._jsc.sc(), _java_strings(gateway, files), _java_strings(gateway, tables),
        _java_strings(gateway, [create_statement(keyspace, t) for t in tables]),
        _java_strings(gateway, [insert_statement(keyspace, t) for t in tables]),
        keyspace, str(cassandra_jars), str(out_root))
    return list(folders)


def write_batches(spark, cfg: dict, batches: list, keyspace: str, folder: Path, partitions: int) -> None:
    """Every batch (one table each) staged under folder, written as SSTables by one Spark job (`partitions`
    tasks per table), then imported table by table. Nothing is imported unless every task succeeded."""
    from digitforge.core.config import project_path

    started = time.time()
    files, tables = [], []
    for b in progress(batches, desc=f"{keyspace}: staging", unit="table"):
        paths = stage_records(to_records(b.ids, b.images, b.labels), folder / "rows" / b.table, partitions)
        files += paths
        tables += [b.table] * len(paths)
    staged = time.time()
    folders = write_sstables(spark, files, tables, keyspace, folder / "sstables",
                             project_path(cfg["ingest"]["cassandra_jars"]))
    written = time.time()
    for table in progress(list(dict.fromkeys(tables)), desc=f"{keyspace}: importing SSTables", unit="table"):
        import_sstables(spark, cfg, keyspace, table, [f for f in folders if Path(f).name == table])
    log.info("%s: staged %.2fs, %d SSTable folders written %.2fs, imported %.2fs", keyspace, staged - started,
             len(folders), written - staged, time.time() - written)


def _java_strings(gateway, values: list[str]):
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
        failed = bulk.importSSTables(host, port, keyspace, table, _java_strings(spark.sparkContext._gateway, folders))
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
