"""spark-submit job: Cassandra raw_train / raw_test -> a versioned Parquet snapshot through Petastorm.

    scripts/submit.sh convert --dataset mnist [--keyspace KS]

Reads tables whose pixels are 784-byte blobs or the original demo's `pixels list<int>` (convert only reads:
an original-demo keyspace converts as it is). The snapshot is filed under the keyspace and the dataset:
<snapshot_root>/<keyspace>/<dataset>/<version>, and `train --keyspace KS` takes KS's latest.
"""
import json
import logging
import sys

from digitforge.core import config, failures
from digitforge.core.logs import setup_logging
from digitforge.core.spark import get_spark
from digitforge.core.storage import StorageError
from digitforge.snapshot import convert
from digitforge.snapshot.write import SnapshotError

log = logging.getLogger("digitforge.jobs.convert")


def main(argv=None) -> int:
    setup_logging()
    p = config.job_parser(__doc__)
    args = p.parse_args(argv)
    cfg = config.resolve_or_exit(args.set, **{"convert.dataset": args.dataset})
    name = cfg["convert"]["dataset"]
    try:
        cfg = config.use_keyspace(cfg, name, args.keyspace)
    except config.ConfigError as e:
        log.error("%s", e)
        return 2
    keyspace = config.dataset_info(cfg, name)["keyspace"]

    spark = get_spark(f"digitforge-convert-{name}", cfg)
    try:
        manifest = convert.take(spark, cfg, name, keyspace)
    except (SnapshotError, StorageError) as e:
        log.error("%s", e)
        log.error("a version without manifest.json is never read: earlier snapshots are as they were")
        return 2
    finally:
        spark.stop()
    log.info("snapshot %s written: %s", manifest["version"], json.dumps(manifest["rows"]))
    print(json.dumps(manifest))
    return 0


if __name__ == "__main__":
    sys.exit(failures.run(main))  # a lost or refusing cluster: one line, exit 2/3
