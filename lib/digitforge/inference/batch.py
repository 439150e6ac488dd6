"""Batch prediction with Spark: a registered model over any raw-shaped table (id, label, pixels as a blob or
the original demo's list<int>) -> the dataset keyspace's predictions table. The model is checked on the
driver, its weights broadcast, and the network built once per partition (mapInPandas)."""
from __future__ import annotations

import logging
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import torch

from digitforge.core.connection import session
from digitforge.core.images import PIXELS
from digitforge.core.spark import write_cassandra
from digitforge.inference.modules import build_module
from digitforge.inference.scoring import probabilities


log = logging.getLogger(__name__)
PREDICTION_SCHEMA = "id int, label int, predicted int, probabilities array<float>"


def pixel_matrix(ids, pixels) -> np.ndarray:
    """(n, 784) uint8 from a column of 784-byte blobs; a bad row is named by its id."""
    for rid, p in zip(ids, pixels):
        if p is None or len(p) != PIXELS:
            raise ValueError(f"row id {rid}: pixels has {0 if p is None else len(p)} bytes, expected {PIXELS}")
    return np.frombuffer(b"".join(pixels), dtype=np.uint8).reshape(-1, PIXELS)


def predict_batches(architecture: str, weights_broadcast, what: str = "model"):
    """A mapInPandas function: (id, label, pixels) batches -> PREDICTION_SCHEMA batches. The module is
    built once per partition from the broadcast weights, not once per batch."""

    def run(batches):
        torch.set_num_threads(1)  # one Python worker per core already
        module = build_module(architecture, weights_broadcast.value, what)
        for pdf in batches:
            probs = probabilities(module, pixel_matrix(pdf["id"], pdf["pixels"]))
            yield pd.DataFrame({"id": pdf["id"], "label": pdf["label"], "predicted": probs.argmax(1).astype(np.int32),
                                "probabilities": list(probs.astype(np.float32))})

    return run


def checked_model(cfg: dict, dataset: str, ref: str, keyspace: str, table: str) -> tuple[dict, bytes]:
    """(details, weights) of model `ref`, its weights checked by building the network here on the driver
    (not on every executor), and keyspace.table checked to exist. Raises LookupError (unknown model,
    alias or table) or the module errors (UnknownArchitecture, BadWeights) before any Spark work."""
    from digitforge.registry.read import fetch

    details, weights = fetch(cfg, dataset, ref)
    build_module(details["architecture"], weights, details["ref"])
    with session(cfg) as s:
        ks_meta = s.cluster.metadata.keyspaces.get(keyspace)
        if ks_meta is None or table not in ks_meta.tables:
            raise LookupError(f"table {keyspace}.{table} does not exist")
    return details, weights


def predict_table(spark, details: dict, weights: bytes, source_keyspace: str, table: str, keyspace: str) -> dict:
    """Predict every row of source_keyspace.table with the model and write keyspace.predictions (one row per
    source table, row id and model: re-running overwrites). Everything is predicted (and every bad row
    found) before the first row is written. Returns the counts, and the accuracy on labelled rows."""
    from pyspark.sql import functions as F

    from digitforge.snapshot.convert import read_raw_table

    source = f"{source_keyspace}.{table}"
    weights_bc = spark.sparkContext.broadcast(weights)
    predictions = (read_raw_table(spark, source_keyspace, table)
                   .mapInPandas(predict_batches(details["architecture"], weights_bc, details["ref"]),
                                schema=PREDICTION_SCHEMA)
                   .withColumn("source", F.lit(source))
                   .withColumn("model_id", F.lit(details["id"]))
                   .withColumn("predicted_at", F.lit(datetime.now(timezone.utc)).cast("timestamp"))
                   .cache())
    rows = predictions.count()
    labelled = predictions.where("label IS NOT NULL").agg(
        F.count("*").alias("n"), F.avg((F.col("label") == F.col("predicted")).cast("double")).alias("acc")).first()
    write_cassandra(predictions, keyspace, "predictions")
    log.info("read %d rows from %s; wrote %d predictions of model %s to %s.predictions", rows, source, rows,
             details["id"], keyspace)
    if labelled["n"]:
        log.info("%d of those rows have labels: accuracy %.4f", labelled["n"], labelled["acc"])
    return {"model_id": details["id"], "source": source, "rows_read": rows, "rows_written": rows,
            "predictions": f"{keyspace}.predictions",
            "labelled_accuracy": round(labelled["acc"], 6) if labelled["n"] else None}
