"""spark-submit job: IDX files or Kaggle CSV files -> Cassandra raw_train / raw_test / raw_predict.

    scripts/submit.sh ingest --dataset mnist                      # the dataset's IDX files
    scripts/submit.sh ingest --data-dir DIR --keyspace KS         # any 28x28 / 0-9 IDX dataset
    scripts/submit.sh ingest --csv train.csv [--csv test.csv]     # Kaggle digit-recognizer CSV
      [--keyspace KS] [--limit N] [--replace] [--set ingest.split_ratio=0.9 ...]

Everything is read and checked before anything is written: bad input exits 2 with 0 rows written.
"""
import json
import logging
import sys

from digitforge.core import config, failures
from digitforge.core.errors import InputError
from digitforge.core.logs import setup_logging
from digitforge.core.spark import get_spark
from digitforge.core.storage import StorageError
from digitforge.core.tables import KeyspaceNotReady
from digitforge.ingest.landing import RestoreFailed
from digitforge.ingest.load import LostRowsError, WriteFailed, prepare_tables, write_and_check
from digitforge.ingest.sources import read_batches
from digitforge.ingest.sstable_writer import BulkLoadError

log = logging.getLogger("digitforge.jobs.ingest")


def main(argv=None) -> int:
    setup_logging()
    p = config.job_parser(__doc__)
    p.add_argument("--data-dir", help="folder with the four IDX files (default: the dataset's folder under the data dir)")
    p.add_argument("--csv", action="append", default=[], metavar="PATH",
                   help="a Kaggle CSV (label,pixel0..783 -> split into raw_train/raw_test; pixel0..783 -> raw_predict); "
                        "repeatable: one labelled and one unlabelled")
    p.add_argument("--limit", type=int, help="ingest only the first N rows of each file (tests, trials)")
    p.add_argument("--replace", action="store_true",
                   help="the target tables hold exactly the new rows afterwards (e.g. after changing the split); "
                        "nothing is emptied until the new rows are written, and a failure leaves the old rows")
    args = p.parse_args(argv)
    cfg = config.resolve_or_exit(args.set, **{"ingest.dataset": args.dataset})
    name = cfg["ingest"]["dataset"]
    try:
        cfg = config.use_keyspace(cfg, name, args.keyspace)  # created if missing
        keyspace = config.dataset_info(cfg, name)["keyspace"]
        # Extract and check everything before writing anything: bad input writes 0 rows.
        batches = read_batches(cfg, name, args.csv, args.data_dir, args.limit)
        for b in batches:
            log.info("read %d rows for %s from %s (0 rejected)", len(b), b.table, b.source)
        writer = prepare_tables(cfg, batches, keyspace, replace=args.replace)
    except (InputError, config.ConfigError, KeyspaceNotReady, StorageError) as e:
        log.error("%s", e)
        log.error("input rejected: nothing was written (0 rows)")
        return 2

    spark = get_spark(f"digitforge-ingest-{name}", cfg)
    try:
        reports, seconds = write_and_check(spark, cfg, batches, keyspace, writer, replace=args.replace)
    except (LostRowsError, BulkLoadError, WriteFailed, RestoreFailed) as e:
        log.error("%s", e)
        return 3
    finally:
        spark.stop()
    written = sum(r["written"] for r in reports)
    log.info("rows read %d, rejected 0, written %d in %.1fs (%.0f rows/s) into %s",
             sum(len(b) for b in batches), written, seconds, written / seconds, keyspace)
    print(json.dumps({"keyspace": keyspace, "rows_written": written, "write_seconds": round(seconds, 3),
                      "rows_per_s": round(written / seconds), "tables": reports}))
    return 0


if __name__ == "__main__":
    sys.exit(failures.run(main))  # a lost or refusing cluster: one line, exit 2/3
