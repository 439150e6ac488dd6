"""Landing staged SSTables so that a multi-table ingest lands all its tables or none.

Cassandra cannot rename a table, so "write fresh tables and swap" is out; instead the node keeps the
old state itself: before any target table changes, the node snapshots them all (hard links, instant,
`nodetool snapshot`). Then (`--replace`: truncate) every table's SSTables are imported and the rows
counted. If anything in that stretch fails (an import the node refuses, a count that does not add up),
every target table is put back from the snapshot: truncated, and the snapshot's SSTables imported
again. Either way the snapshot is cleared at the end, unless the restore itself failed: then it is
kept, and the error names it and how to restore by hand.

Readers that look while the imports run may see a table half replaced, for seconds; nobody is left
with a half-replaced table afterwards.
"""
from __future__ import annotations

import logging
import uuid
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)


class RestoreFailed(RuntimeError):
    """The tables could not be put back from the snapshot; the message names it."""


class NodeSnapshot:
    """A snapshot of some tables of one keyspace on the node (over JMX), restorable table by table."""

    def __init__(self, spark, cfg: dict, keyspace: str, tables: list[str]):
        from digitforge.core.connection import credentials, jmx_host

        self.spark, self.cfg, self.keyspace, self.tables = spark, cfg, keyspace, list(tables)
        self.host, self.port = jmx_host(cfg), int(cfg["cassandra"]["jmx_port"])
        self.tag = f"digitforge-ingest-{uuid.uuid4().hex[:12]}"
        self._jmx = spark._jvm.io.digitforge.bulk.SparkSSTableWriter
        creds = credentials()
        self._jmx.useJmxCredentials(creds.jmx_username, creds.jmx_password)  # None: no JMX login asked

    def _strings(self, values):
        from digitforge.ingest.sstable_writer import java_strings

        return java_strings(self.spark.sparkContext._gateway, values)

    def take(self) -> None:
        self._jmx.snapshotTables(self.host, self.port, self.tag,
                                 self._strings([f"{self.keyspace}.{t}" for t in self.tables]))
        log.info("%s: snapshot %s of %s taken before landing", self.keyspace, self.tag, ", ".join(self.tables))

    def folders(self, table: str) -> list[str]:
        """The snapshot's folder of a table on the node (none when the table held no SSTables)."""
        found = []
        for location in self._jmx.dataFileLocations(self.host, self.port):
            found += [str(p) for p in Path(location, self.keyspace).glob(f"{table}-*/snapshots/{self.tag}")
                      if any(p.glob("*-Data.db"))]
        return found

    def restore(self, session, table: str) -> None:
        """Put the table back as it was when the snapshot was taken."""
        from digitforge.ingest.sstable_writer import import_sstables

        folders = self.folders(table)
        session.execute(f"TRUNCATE {self.keyspace}.{table}")
        import_sstables(self.spark, self.cfg, self.keyspace, table, folders)
        log.warning("%s.%s restored from snapshot %s", self.keyspace, table, self.tag)

    def clear(self) -> None:
        self._jmx.clearSnapshot(self.host, self.port, self.tag, self._strings([self.keyspace]))


@contextmanager
def all_or_none(spark, cfg: dict, session, keyspace: str, tables: list[str], before: dict):
    """Run the block (truncates, imports, counts) with every target table restorable: if it raises, each
    table is restored from the node's snapshot and its ids checked against `before` (table -> ids), and
    a BulkLoadError says so; the original error is kept as its cause."""
    from digitforge.ingest.load import read_ids
    from digitforge.ingest.sstable_writer import BulkLoadError

    snap = NodeSnapshot(spark, cfg, keyspace, tables)
    snap.take()
    try:
        yield snap
    except Exception as e:
        log.error("%s: landing failed (%s); putting %s back from snapshot %s", keyspace, e, ", ".join(tables), snap.tag)
        try:
            for table in tables:
                snap.restore(session, table)
                found = read_ids(session, table)
                if len(found) != len(before[table]) or (found != before[table]).any():
                    raise RestoreFailed(f"{keyspace}.{table} holds {len(found)} rows after the restore, "
                                        f"{len(before[table])} before")
        except Exception as restore_error:
            raise RestoreFailed(
                f"{keyspace}: landing failed ({e}) and restoring the tables failed too ({restore_error}); the old "
                f"rows are in the node's snapshot {snap.tag} (data_file_directories/{keyspace}/<table>-*/snapshots/"
                f"{snap.tag}): TRUNCATE each table and `nodetool import` that folder") from e
        snap.clear()
        raise BulkLoadError(f"{e}; rolled back: {', '.join(f'{keyspace}.{t}' for t in tables)} are as before "
                            "(no table changed)") from e
    snap.clear()
