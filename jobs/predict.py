"""spark-submit job: batch predictions of a registered model over a raw table -> the predictions table.

    scripts/submit.sh predict --dataset mnist [--model champion|ID] [--table raw_predict] [--keyspace KS]

--keyspace KS: the keyspace that holds the table, the registry and the predictions table (default: the
dataset's); `--set predict.keyspace=OTHER` reads the table from another keyspace. The registry's keyspace
is checked before any work (one that needs `digitforge schema apply` exits 2).

Reads any table shaped like raw_predict (id, label, pixels as a blob or the original demo's list<int>),
checks the model's weights against their sha256 on the driver, broadcasts them, builds the network
once per partition (mapInPandas), and writes one row per (source table, row id, model) to the
dataset keyspace's predictions table: re-running the same model on the same table overwrites.
"""
import json
import logging
import sys

from digitforge.core import config, failures
from digitforge.core.logs import setup_logging
from digitforge.core.spark import get_spark
from digitforge.core.tables import KeyspaceNotReady, require_current
from digitforge.inference.batch import checked_model, predict_table
from digitforge.inference.modules import BadWeights, UnknownArchitecture

log = logging.getLogger("digitforge.jobs.predict")


def main(argv=None) -> int:
    setup_logging()
    p = config.job_parser(__doc__)
    p.add_argument("--model", help="model id or alias (default: champion)")
    p.add_argument("--table", help="table to predict (default: raw_predict)")
    args = p.parse_args(argv)
    cfg = config.resolve_or_exit(args.set, **{"predict.dataset": args.dataset, "predict.model": args.model,
                                              "predict.table": args.table})
    pc = cfg["predict"]
    name = pc["dataset"]
    try:
        cfg = config.use_keyspace(cfg, name, args.keyspace)
        keyspace = config.dataset_info(cfg, name)["keyspace"]
        source_ks = pc["keyspace"] or keyspace
        require_current(cfg, keyspace)
        details, weights = checked_model(cfg, name, pc["model"], source_ks, pc["table"])
    except (LookupError, config.ConfigError, KeyspaceNotReady, UnknownArchitecture, BadWeights) as e:
        log.error("%s; nothing was written", e)
        return 2
    log.info("predicting %s.%s with %s (%s, test accuracy %.4f)", source_ks, pc["table"], details["ref"],
             details["architecture"], details["test_accuracy"] or float("nan"))

    spark = get_spark(f"digitforge-predict-{name}", cfg)
    try:
        summary = predict_table(spark, details, weights, source_ks, pc["table"], keyspace)
    finally:
        spark.stop()
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(failures.run(main))  # a lost or refusing cluster: one line, exit 2/3
