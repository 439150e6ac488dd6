"""The CQL writer: spark-cassandra-connector writes (unlogged batches of many rows, settings from the
`ingest:` config) of rows staged as Parquet files. Works against any cluster."""
from __future__ import annotations

from digitforge.core import storage
from digitforge.core.progress import progress
from digitforge.core.spark import CASSANDRA_FORMAT
from digitforge.ingest.rows import ROW_SCHEMA, chunks, file_ranges, to_arrow


def stage(batch, folder: str, files: int) -> str:
    """The batch's rows as `files` uncompressed Parquet files of consecutive rows in folder (a local path or a
    URL: the staging area, core/storage.py), one row group per chunk (rows.chunks: memory stays at one chunk
    however large the batch). Returns the folder."""
    import pyarrow.parquet as pq

    fs, root = storage.filesystem(folder, "ingest.staging_dir")
    fs.create_dir(root, recursive=True)
    for k, (start, stop) in enumerate(file_ranges(len(batch), files)):
        writer = None
        for ids, images, labels in chunks(batch, start, stop):
            table = to_arrow(ids, images, labels)
            writer = writer or pq.ParquetWriter(f"{root}/part-{k:05d}.parquet", table.schema, compression="none",
                                                filesystem=fs)
            writer.write_table(table)
        writer.close()
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


def write_tables(spark, cfg: dict, batches: list, keyspace: str, folder: str, partitions: int) -> None:
    """Every batch (one table each) staged as `partitions` Parquet files under folder, then written to
    keyspace.<batch.table> by the connector at cassandra.consistency, table by table."""
    for b in progress(batches, desc=f"{keyspace}: staging and writing through CQL", unit="table"):
        staged = stage(b, storage.join(folder, b.table), partitions)
        (spark.read.schema(ROW_SCHEMA).parquet(storage.to_url(staged)).write.format(CASSANDRA_FORMAT)
         .options(keyspace=keyspace, table=b.table, **output_options(cfg["ingest"])).mode("append").save())


def write_batches(spark, cfg: dict, batches: list, keyspace: str, folder: str, partitions: int, land) -> list[dict]:
    """write_tables inside `land` (which counts the tables and, for --replace, deletes stale rows only after
    every table is written and counted)."""
    return land(lambda: write_tables(spark, cfg, batches, keyspace, folder, partitions))
