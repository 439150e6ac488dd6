"""spark-submit job: Cassandra raw_train / raw_test -> a versioned Parquet snapshot through Petastorm.

    scripts/submit.sh convert --dataset mnist [--keyspace KS]

Reads tables whose pixels are 784-byte blobs or the original demo's `pixels list<int>`.
"""
import json
import logging
import sys

from digitforge import config, snapshot
from digitforge.errors import input_error_in
from digitforge.logs import setup_logging
from digitforge.spark import get_spark

log = logging.getLogger("digitforge.jobs.convert")


def main(argv=None) -> int:
    setup_logging()
    p = config.job_parser(__doc__)
    p.add_argument("--keyspace", help="read from this keyspace instead of the dataset's own")
    args = p.parse_args(argv)
    cfg = config.resolve(args.set, **{"convert.dataset": args.dataset})
    cc = cfg["convert"]
    name = cc["dataset"]
    keyspace = args.keyspace or config.dataset_info(cfg, name)["keyspace"]

    spark = get_spark(f"digitforge-convert-{name}", cfg)
    splits = {"train": snapshot.read_images(spark, keyspace, "raw_train"),
              "test": snapshot.read_images(spark, keyspace, "raw_test")}
    try:
        manifest = snapshot.write_snapshot(
            spark, splits, config.project_path(cc["snapshot_root"]), name,
            source={"keyspace": keyspace, "tables": {"train": "raw_train", "test": "raw_test"}},
            files_per_split=cc["files_per_split"], row_group_size_mb=cc["row_group_size_mb"])
    except Exception as e:  # a bad row of an original-demo table fails its Spark task
        problem = input_error_in(e)
        if problem is None:
            raise
        log.error("%s", problem)
        log.error("no snapshot was written (a version without manifest.json is never read)")
        return 2
    finally:
        spark.stop()
    for split, n in manifest["rows"].items():
        if n == 0:
            log.error("%s.raw_%s is empty: ingest the dataset first", keyspace, split)
            return 2
    log.info("snapshot %s written: %s", manifest["version"], json.dumps(manifest["rows"]))
    print(json.dumps(manifest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
