"""The SparkSession of a job. Under spark-submit the profile (conf/spark/*.conf) is already applied;
elsewhere (a notebook, a test) the same profile and the staged connector jars are applied here."""
from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path
from urllib.parse import urlparse

from digitforge.core.config import PROJECT_ROOT, conf_dir

CASSANDRA_FORMAT = "org.apache.spark.sql.cassandra"
log = logging.getLogger(__name__)


def connector_jars() -> list[str]:
    """The connector and its deps (build/jars/spark) and digitforge's own (build/jars/digitforge)."""
    jars = [sorted(str(p) for p in (PROJECT_ROOT / "build" / "jars" / d).glob("*.jar")) for d in ("spark", "digitforge")]
    if not all(jars):
        raise RuntimeError("connector or digitforge jars not staged: run `make jars`")
    return jars[0] + jars[1]


def s3_jars() -> list[str]:
    """hadoop-aws and the AWS SDK (build/jars/s3): Spark's s3a filesystem, for s3:// storage locations."""
    jars = sorted(str(p) for p in (PROJECT_ROOT / "build" / "jars" / "s3").glob("*.jar"))
    if not jars:
        raise RuntimeError("s3 jars not staged: run `make jars`")
    return jars


def read_profile(name: str) -> dict[str, str]:
    """The settings of conf/spark/<name>.conf (`key value` lines, @ROOT@ filled in)."""
    conf = {}
    for line in (conf_dir() / "spark" / f"{name}.conf").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            key, _, value = line.partition(" ")
            conf[key] = value.strip().replace("@ROOT@", str(PROJECT_ROOT))  # paths in the profile
    return conf


def get_spark(app_name: str, cfg: dict | None = None, profile_overrides: dict | None = None):
    """The job's SparkSession (the profile, with profile_overrides, and connector jars applied when not under
    spark-submit), pointed at cfg's Cassandra cluster (core/connection.connector_conf)."""
    from pyspark.sql import SparkSession

    from digitforge.core.storage import spark_conf

    builder = SparkSession.builder.appName(app_name)
    storage_conf = spark_conf(cfg) if cfg is not None else {}
    if "PYSPARK_GATEWAY_PORT" not in os.environ:  # not launched by spark-submit
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        profile = read_profile(os.environ.get("DIGITFORGE_SPARK_PROFILE", "local")) | (profile_overrides or {})
        for key, value in profile.items():
            builder = builder.config(key, value)
        builder = builder.config("spark.jars", ",".join(connector_jars() + (s3_jars() if storage_conf else [])))
    if cfg is not None:  # the cluster, DC, consistency, credentials and TLS: the same as the driver's
        from digitforge.core.connection import connector_conf

        for key, value in (connector_conf(cfg) | storage_conf).items():
            builder = builder.config(key, value)
    spark = builder.getOrCreate()
    drop_driver_archives(spark)
    if cfg is not None:  # a session that already existed (tests, notebooks) takes them at run time
        for key, value in connector_conf(cfg).items():
            spark.conf.set(key, value)
        for key, value in storage_conf.items():  # Hadoop's settings live in the context's Hadoop conf
            spark.sparkContext._jsc.hadoopConfiguration().set(key.removeprefix("spark.hadoop."), value)
    return spark


def drop_driver_archives(spark) -> None:
    """Spark unpacks spark.archives for a client-mode driver as well: the packed environment of `make dist`,
    8 GB in the driver's SparkFiles folder, although the driver runs on this checkout's venv. That copy is
    removed once the session is up (executors fetch the archive itself from the driver, never this copy),
    so a submitting host does not hold one more environment per running job."""
    from pyspark import SparkFiles

    conf = spark.sparkContext.getConf()
    archives = [a for a in conf.get("spark.archives", "").split(",") if a]
    if not archives or conf.get("spark.submit.deployMode", "client") != "client" or conf.get("spark.master", "").startswith("local"):
        return
    root = Path(SparkFiles.getRootDirectory())
    for archive in archives:
        folder = root / (archive.split("#", 1)[1] if "#" in archive else Path(urlparse(archive).path).name)
        if folder.is_dir() and not Path(sys.executable).resolve().is_relative_to(folder.resolve()):
            shutil.rmtree(folder, ignore_errors=True)
            log.info("removed the driver's unpacked copy of %s (%s): the driver runs on %s", archive, folder,
                     sys.executable)


def cassandra_table(spark, keyspace: str, table: str):
    """keyspace.table as a Spark DataFrame, through the connector."""
    return spark.read.format(CASSANDRA_FORMAT).options(keyspace=keyspace, table=table).load()


def write_cassandra(df, keyspace: str, table: str) -> None:
    # Rows are upserts by primary key: writing the same ids again replaces, never duplicates.
    """Append df's rows to keyspace.table through the connector."""
    df.write.format(CASSANDRA_FORMAT).options(keyspace=keyspace, table=table).mode("append").save()
