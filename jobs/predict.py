"""spark-submit job: batch predictions of a registered model over a raw table -> the predictions table.

    scripts/submit.sh predict --dataset mnist [--model champion|ID] [--table raw_predict] [--keyspace KS]

Reads any table shaped like raw_predict (id, label, pixels as a blob or the original demo's list<int>),
checks the model's weights against their sha256 on the driver, broadcasts them, builds the network
once per partition (mapInPandas), and writes one row per (source table, row id, model) to the
dataset keyspace's predictions table: re-running the same model on the same table overwrites.
"""
import json
import logging
import sys
from datetime import datetime, timezone

from digitforge.core import config
from digitforge.registry import read as registry_read
from digitforge.snapshot.convert import read_raw_table
from digitforge.core.cql import session
from digitforge.inference.batch import PREDICTION_SCHEMA, predict_batches
from digitforge.inference.modules import BadWeights, UnknownArchitecture, build_module
from digitforge.core.logs import setup_logging
from digitforge.core.spark import get_spark, write_cassandra

log = logging.getLogger("digitforge.jobs.predict")


def main(argv=None) -> int:
    setup_logging()
    p = config.job_parser(__doc__)
    p.add_argument("--model", help="model id or alias (default: champion)")
    p.add_argument("--table", help="table to predict (default: raw_predict)")
    p.add_argument("--keyspace", help="the table's keyspace (default: the dataset's)")
    args = p.parse_args(argv)
    cfg = config.resolve_or_exit(args.set, **{"predict.dataset": args.dataset, "predict.model": args.model,
                                      "predict.table": args.table, "predict.keyspace": args.keyspace})
    pc = cfg["predict"]
    name = pc["dataset"]
    keyspace = config.dataset_info(cfg, name)["keyspace"]
    source_ks = pc["keyspace"] or keyspace
    source = f"{source_ks}.{pc['table']}"
    try:
        details, weights = registry_read.fetch(cfg, name, pc["model"])
        build_module(details["architecture"], weights, details["ref"])  # fail here, not on every executor
        with session(cfg) as s:
            ks_meta = s.cluster.metadata.keyspaces.get(source_ks)
            if ks_meta is None or pc["table"] not in ks_meta.tables:
                raise LookupError(f"table {source} does not exist")
    except (LookupError, UnknownArchitecture, BadWeights) as e:
        log.error("%s", e)
        log.error("nothing was written")
        return 2
    log.info("predicting %s with %s (%s, test accuracy %.4f)", source, details["ref"], details["architecture"],
             details["test_accuracy"] or float("nan"))

    spark = get_spark(f"digitforge-predict-{name}", cfg)
    from pyspark.sql import functions as F

    images = read_raw_table(spark, source_ks, pc["table"])
    weights_bc = spark.sparkContext.broadcast(weights)
    predictions = (images.mapInPandas(predict_batches(details["architecture"], weights_bc, details["ref"]),
                                      schema=PREDICTION_SCHEMA)
                   .withColumn("source", F.lit(source))
                   .withColumn("model_id", F.lit(details["id"]))
                   .withColumn("predicted_at", F.lit(datetime.now(timezone.utc)).cast("timestamp"))
                   .cache())
    # Everything is predicted (and every bad row found) before the first row is written.
    rows = predictions.count()
    labelled = predictions.where("label IS NOT NULL").agg(
        F.count("*").alias("n"), F.avg((F.col("label") == F.col("predicted")).cast("double")).alias("acc")).first()
    write_cassandra(predictions, keyspace, "predictions")
    log.info("read %d rows from %s; wrote %d predictions of model %s to %s.predictions", rows, source, rows,
             details["id"], keyspace)
    if labelled["n"]:
        log.info("%d of those rows have labels: accuracy %.4f", labelled["n"], labelled["acc"])
    spark.stop()
    print(json.dumps({"model_id": details["id"], "source": source, "rows_read": rows, "rows_written": rows,
                      "predictions": f"{keyspace}.predictions",
                      "labelled_accuracy": round(labelled["acc"], 6) if labelled["n"] else None}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
