"""The JVM class archive of the local Spark profile: what makes a one-off local job start in half the time.

A local spark-submit spends most of its first seconds loading, verifying and compiling the classes of Spark,
the connector and Cassandra's SSTable writer. Java's application class-data sharing (AppCDS, JDK 13+) maps
classes already parsed and verified from an archive instead; conf/spark/local.conf names the archive with
`-XX:SharedArchiveFile` (with C1-only compilation, `-XX:TieredStopAtLevel=1`, which warms up faster than the
default C2 for jobs that last seconds to minutes). The archive belongs to one JDK and one Spark: `make jars`
makes it here by running a small workload (Spark SQL, Parquet, Arrow to Python, and the SSTable writer on a few
synthetic rows, no Cassandra node needed) in a JVM started with `-XX:ArchiveClassesAtExit`. A missing or stale
archive costs only speed: the JVM then loads classes as usual (its CDS warnings are switched off in the profile).

    .venv/bin/python -m digitforge.core.class_archive build/cds/spark-local.jsa
"""
from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

WORKLOAD_ROWS = 4000


def workload(spark, folder: Path) -> None:
    """The classes local jobs load: a DataFrame through Parquet and back, Arrow batches to a Python worker,
    and the SSTable writer's Spark job (its own class loader over cassandra-all) on synthetic rows."""
    from digitforge.core.config import load_defaults, project_path
    from digitforge.ingest.rows import to_records
    from digitforge.ingest.sstable_writer import write_sstables

    df = spark.range(WORKLOAD_ROWS).selectExpr("cast(id as int) id", "cast(id % 10 as int) label",
                                              "cast(repeat('x', 784) as binary) pixels")
    df.repartition(2).write.parquet(str(folder / "parquet"))
    back = spark.read.parquet(str(folder / "parquet"))
    back.groupBy("label").count().toPandas()
    back.mapInPandas(lambda batches: (b[["id"]] for b in batches), "id int").count()

    ids = np.arange(WORKLOAD_ROWS, dtype=np.int32)
    files = []
    for k, part in enumerate(np.array_split(ids, 2)):
        path = folder / f"part-{k}.rec"
        to_records(part, np.zeros((len(part), 784), np.uint8), (part % 10).astype(np.int8)).tofile(path)
        files.append(str(path))
    cfg = load_defaults()
    write_sstables(spark, files, ["raw_train"] * len(files), "class_archive", folder / "sstables",
                   project_path(cfg["ingest"]["cassandra_jars"]))


def build(out: Path) -> None:
    """Run the workload in a local-profile JVM that writes its loaded classes to `out` when it exits (written
    under a temporary name, then renamed: a half-written archive is never used)."""
    from pyspark import SparkContext

    from digitforge.core.spark import get_spark, read_profile

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
    options = read_profile("local").get("spark.driver.defaultJavaOptions", "").split()
    options = [o for o in options if not o.startswith("-XX:SharedArchiveFile=")] + [f"-XX:ArchiveClassesAtExit={tmp}"]
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # the Python workers: this venv's, as under submit.sh
    started = time.time()
    spark = get_spark("digitforge-class-archive", profile_overrides={"spark.driver.defaultJavaOptions": " ".join(options)})
    try:
        with tempfile.TemporaryDirectory(prefix="class-archive-") as folder:
            workload(spark, Path(folder))
        spark.stop()
    finally:
        # The JVM writes the archive as it exits, which it does when its stdin (the gateway's pipe) closes.
        proc = SparkContext._gateway.proc
        proc.stdin.close()
        proc.wait(timeout=600)
    if not tmp.is_file():
        raise RuntimeError(f"the JVM wrote no class archive at {tmp} (exit {proc.returncode})")
    os.replace(tmp, out)
    log.info("class archive %s: %.0f MiB in %.0fs", out, out.stat().st_size / 2**20, time.time() - started)


def main(argv: list[str] | None = None) -> int:
    from digitforge.core.logs import setup_logging

    setup_logging()
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(args[0])
    try:
        build(out)
    finally:
        for stale in out.parent.glob(f"{out.name}.*.tmp"):  # a failed run's half-written archive
            stale.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
