"""Inference with a registered model: safetensors weights -> an eval-mode module -> class probabilities.

Pure functions (no Cassandra, no Spark session): the registry builds modules with them, and the
predict job ships them to executors as a mapInPandas function.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from digitforge.registry import artifacts
from digitforge.ingest.idx import PIXELS
from digitforge.training.models import ARCHITECTURES, build_model, normalise

PREDICTION_SCHEMA = "id int, label int, predicted int, probabilities array<float>"


class UnknownArchitecture(LookupError):
    pass


class BadWeights(ValueError):
    pass


def build_module(architecture: str, weights: bytes, what: str = "model") -> torch.nn.Module:
    """An eval-mode module of `architecture` holding `weights` (safetensors bytes). `what` names the
    model in errors."""
    if architecture not in ARCHITECTURES:
        raise UnknownArchitecture(f"{what}: architecture {architecture!r} is not known to this code "
                                  f"(known: {', '.join(ARCHITECTURES)})")
    module = build_model(architecture)
    try:
        module.load_state_dict(artifacts.weights_from_bytes(weights))
    except Exception as e:  # safetensors header errors, missing/unexpected keys, shape mismatches
        raise BadWeights(f"{what}: its weights do not load into a {architecture!r} network ({e})") from None
    return module.eval()


def pixel_matrix(ids, pixels) -> np.ndarray:
    """(n, 784) uint8 from a column of 784-byte blobs; a bad row is named by its id."""
    for rid, p in zip(ids, pixels):
        if p is None or len(p) != PIXELS:
            raise ValueError(f"row id {rid}: pixels has {0 if p is None else len(p)} bytes, expected {PIXELS}")
    return np.frombuffer(b"".join(pixels), dtype=np.uint8).reshape(-1, PIXELS)


@torch.no_grad()
def probabilities(module: torch.nn.Module, pixels_u8: np.ndarray, batch_rows: int = 1024) -> np.ndarray:
    """Softmax class probabilities, (n, classes) float32."""
    out = []
    for start in range(0, len(pixels_u8), batch_rows):
        x = normalise(torch.from_numpy(pixels_u8[start:start + batch_rows].copy()))  # frombuffer is read-only
        out.append(torch.softmax(module(x), dim=1).numpy())
    return np.concatenate(out) if out else np.zeros((0, 10), np.float32)


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
