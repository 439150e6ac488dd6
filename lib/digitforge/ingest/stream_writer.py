"""The stream writer: Spark tasks write SSTables (as the sstable writer does), then Cassandra's own bulk loader
(`BulkLoader`, what `sstableloader` runs; jvm/bulk SparkSSTableStreamer) streams each folder to every replica
of the rows it holds, over the nodes' storage port (cassandra.storage_port).

Two Spark jobs, on purpose: the first writes every table's SSTables, the second streams them. A task that
fails while writing fails the first job, and then nothing has reached any table. A stream that fails part
way leaves the rows it sent on the replicas that took them; they are upserts by id, so re-running the ingest
(or any ingest of the same rows) makes every replica whole without doubling a count.

A replica that dies mid-stream fails the stream (the loader sends every replica its share directly). When
the nodes that went away still leave every range enough live replicas for cassandra.consistency (one node
of three at LOCAL_QUORUM), the job completes: the rows are written again through CQL at that consistency
(ingest/cql_writer.py; Cassandra itself then refuses a write it cannot place on enough replicas, and the
coordinators keep hints for the dead node), with a WARNING naming the node and the repair that makes it
whole. Re-streaming with the dead node in the loader's ignore list would do the same but trust our own
count of live replicas per range, and need a JVM change; the CQL path is the cluster's own check. Otherwise
the job fails with the stream's one-line error.

The streaming tasks read the folders the writing tasks left: with ingest.staging_dir a URL (s3://, hdfs://)
every task writes its SSTables locally and copies them up there, and a streaming task copies a folder down
before it streams it, so executors need no shared disk; with a local path, only tasks that see that path
(local mode, one host, a shared mount) can.
"""
from __future__ import annotations

import json
import logging
import time

from digitforge.core import storage
from digitforge.ingest import cql_writer
from digitforge.ingest.sstable_writer import (BulkLoadError, cassandra_jars, java_strings, stage_batches,
                                              write_sstables)

log = logging.getLogger(__name__)


def stream_target(spark, cfg: dict):
    """The loader's StreamTarget for cfg: the contact points, native and storage ports, login and TLS, and the
    outbound limit (ingest.stream_throttle_mib)."""
    from digitforge.core import connection

    c, creds = cfg["cassandra"], connection.credentials()
    target = (spark._jvm.io.digitforge.bulk.StreamTarget.of(",".join(connection.hosts(cfg)), int(c["port"]),
                                                           int(c["storage_port"]))
              .withThrottleMebibytes(int(cfg["ingest"]["stream_throttle_mib"])))
    if creds.username:
        target = target.withCredentials(creds.username, creds.password or "")
    if c.get("ssl"):
        target = target.withTruststore(c.get("ssl_truststore") or creds.truststore, creds.truststore_password)
    return target


def stream_folders(spark, cfg: dict, folders: list[str]) -> list[dict]:
    """One Spark task per folder streams it to every replica. Returns what each stream sent (folder, files,
    bytes, replicas); raises BulkLoadError naming the folder and the replica that failed."""
    from py4j.protocol import Py4JJavaError

    streamer = spark._jvm.io.digitforge.bulk.SparkSSTableStreamer
    try:
        results = streamer.streamFolders(spark.sparkContext._jsc.sc(), java_strings(spark.sparkContext._gateway, folders),
                                         cassandra_jars(spark, cfg), stream_target(spark, cfg))
    except Py4JJavaError as e:
        raise BulkLoadError(f"streaming SSTables to {','.join(map(str, cfg['cassandra']['hosts']))} "
                            f"(storage port {cfg['cassandra']['storage_port']}) failed: {_cause(e)}; re-run the "
                            "ingest: rows already streamed are upserts, counts do not double") from None
    return [json.loads(r.toJson()) for r in results]


def write_batches(spark, cfg: dict, batches: list, keyspace: str, folder: str, partitions: int, land) -> list[dict]:
    """Every batch (one table each) staged under folder and written as SSTables by one Spark job (`partitions`
    tasks per table); only once every task has succeeded, a second job streams them to the replicas, inside
    `land` (which counts the tables and, for --replace, deletes stale rows only after every table is in).
    Returns what `land` returns."""
    started = time.time()
    files, tables = stage_batches(batches, folder, partitions, keyspace, int(cfg["ingest"]["task_rows"]))
    staged = time.time()
    folders = write_sstables(spark, files, tables, keyspace, storage.join(folder, "sstables"), cassandra_jars(spark, cfg))
    written = time.time()
    sent: list[dict] = []
    streamed = []  # when the stream (or its CQL fallback) ended: the rest of `land` is the count checks

    def stream_all() -> bool:
        """True: every replica of every row took its files (the count may then read any one replica)."""
        try:
            sent.extend(stream_folders(spark, cfg, folders))
            streamed.append(time.time())
            return True
        except BulkLoadError as e:
            down, problem = stream_failure(cfg, keyspace)
            if problem:
                raise BulkLoadError(f"{e} ({problem})") from None
            log.warning("%s: a replica went away mid-stream (%s: storage port %s does not answer); the live "
                        "replicas still satisfy cassandra.consistency=%s, so the rows are written again through "
                        "CQL (the streamed ones are upserts). Once %s is back, run `nodetool repair %s` on it (or "
                        "re-run this ingest) to make its replicas whole; the stream said: %s", keyspace,
                        ", ".join(down), cfg["cassandra"]["storage_port"], cfg["cassandra"]["consistency"],
                        ", ".join(down), keyspace, e)
            cql_writer.write_tables(spark, cfg, batches, keyspace, storage.join(folder, "cql"), partitions)
            streamed.append(time.time())
            return False  # written at cassandra.consistency: the dead node's replicas lack them

    reports = land(stream_all)
    landed = time.time()
    replicas = sorted({r for s in sent for r in s["replicas"]})
    log.info("%s: staged %.2fs, %d SSTable folders written %.2fs in %s, streamed %.1f MiB to %d replicas (%s) %.2fs, "
             "counted %.2fs", keyspace, staged - started, len(folders), written - staged, storage.join(folder, "sstables"),
             sum(s["bytes"] for s in sent) / 2 ** 20, len(replicas), " ".join(replicas), streamed[0] - written,
             landed - streamed[0])
    return reports


def stream_failure(cfg: dict, keyspace: str) -> tuple[list[str], str | None]:
    """After a failed stream, asked through one session: the nodes of cassandra.local_dc whose storage port
    (what the loader streams to) does not answer now, and why the keyspace cannot be written without them
    (None: the live replicas still satisfy the consistency level)."""
    from digitforge.core.connection import session
    from digitforge.core.replication import writable_without
    from digitforge.ingest.writer_choice import nodes, port_answers

    with session(cfg) as s:
        down = [a for a in nodes(cfg, s) if not port_answers(a, int(cfg["cassandra"]["storage_port"]))]
        return down, ("no node is down" if not down else writable_without(s, keyspace, cfg, down))


def _cause(e) -> str:
    """The loader's own message (it names the table, the folder and the replica), not py4j's stack."""
    text = str(e.java_exception)
    return text.split("SSTableStreamException: ", 1)[-1].splitlines()[0]
