"""Batch prediction on Spark executors: a mapInPandas function over (id, label, pixels) rows."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from digitforge.inference.modules import build_module
from digitforge.inference.scoring import probabilities
from digitforge.core.images import PIXELS


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
