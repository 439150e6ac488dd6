"""spark-submit job: a dataset's IDX files -> Cassandra raw_train / raw_test.

    scripts/submit.sh ingest --dataset mnist [--data-dir DIR] [--limit N]
"""
import logging
import sys
import time

from digitforge import config, idx
from digitforge.cql import session
from digitforge.data_files import dataset_folder
from digitforge.errors import InputError
from digitforge.ingest import check_table_is_compact, count_rows, to_rows, write_rows
from digitforge.logs import setup_logging
from digitforge.spark import get_spark

log = logging.getLogger("digitforge.jobs.ingest")


def main(argv=None) -> int:
    setup_logging()
    p = config.job_parser(__doc__)
    p.add_argument("--data-dir", help="folder with the four IDX files (default: the dataset's folder under the data dir)")
    p.add_argument("--limit", type=int, help="ingest only the first N images of each split (tests, trials)")
    args = p.parse_args(argv)
    cfg = config.resolve(args.set, **{"ingest.dataset": args.dataset})
    name = cfg["ingest"]["dataset"]
    ds = config.dataset_info(cfg, name)
    try:
        folder = args.data_dir or dataset_folder(name, ds["folder"])
        # Extract and check everything before writing anything: bad input writes 0 rows.
        splits = {}
        for split, table in (("train", "raw_train"), ("test", "raw_test")):
            images, labels = idx.read_pair(*idx.find_split_files(folder, split))
            if args.limit:
                images, labels = images[:args.limit], labels[:args.limit]
            splits[table] = to_rows(images, labels)
            log.info("read %d %s images from %s", len(images), split, folder)
        with session(cfg) as s:
            for table in splits:
                check_table_is_compact(s, ds["keyspace"], table)
    except InputError as e:
        log.error("%s", e)
        log.error("nothing was written")
        return 2

    spark = get_spark(f"digitforge-ingest-{name}", cfg)
    for table, rows in splits.items():
        t0 = time.time()
        write_rows(spark, rows, ds["keyspace"], table, cfg["ingest"]["write_partitions"])
        secs = time.time() - t0
        stored = count_rows(spark, ds["keyspace"], table)
        log.info("%s.%s: wrote %d rows in %.1fs (%.0f rows/s); table now holds %d rows",
                 ds["keyspace"], table, len(rows), secs, len(rows) / secs, stored)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
