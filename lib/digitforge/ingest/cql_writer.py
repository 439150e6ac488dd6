"""The CQL writer: spark-cassandra-connector writes (unlogged batches of many rows, settings from the
`ingest:` config) of rows staged as Parquet files. Works against any cluster."""
from __future__ import annotations

from pathlib import Path

from digitforge.core.progress import progress
from digitforge.core.spark import CASSANDRA_FORMAT
from digitforge.ingest.rows import ROW_SCHEMA, to_arrow


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


def write_tables(spark, cfg: dict, batches: list, keyspace: str, folder: Path, partitions: int) -> None:
    """Every batch (one table each) staged as `partitions` Parquet files under folder, then written to
    keyspace.<batch.table> by the connector at cassandra.consistency, table by table."""
    for b in progress(batches, desc=f"{keyspace}: staging and writing through CQL", unit="table"):
        staged = stage(to_arrow(b.ids, b.images, b.labels), folder / b.table, partitions)
        (spark.read.schema(ROW_SCHEMA).parquet(str(staged)).write.format(CASSANDRA_FORMAT)
         .options(keyspace=keyspace, table=b.table, **output_options(cfg["ingest"])).mode("append").save())


def write_batches(spark, cfg: dict, batches: list, keyspace: str, folder: Path, partitions: int, land) -> list[dict]:
    """write_tables inside `land` (which counts the tables and, for --replace, deletes stale rows only after
    every table is written and counted)."""
    return land(lambda: write_tables(spark, cfg, batches, keyspace, folder, partitions))
