"""A model on rows in memory (the driver, or a notebook): class probabilities, and the evaluation the
retrain job scores champion and challenger with on the very same test rows (reports take their
predictions from it too)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from digitforge.core.images import NUM_CLASSES
from digitforge.core.progress import progress
from digitforge.inference.modules import build_module
from digitforge.training.models import normalise



@torch.no_grad()
def evaluate(module: torch.nn.Module, pixels_u8: np.ndarray, labels: np.ndarray, batch_size: int = 1000) -> dict:
    """Accuracy, mean cross-entropy, confusion matrix (true x predicted), and per row the predicted
    class and its probability."""
    module.eval()
    labels_t = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    loss, preds, confs = 0.0, [], []
    for start in progress(range(0, len(labels_t), batch_size), desc=f"evaluating on {len(labels_t)} rows", unit="batch"):
        x = normalise(torch.from_numpy(np.ascontiguousarray(pixels_u8[start:start + batch_size])))
        logits = module(x)
        loss += float(F.cross_entropy(logits, labels_t[start:start + batch_size], reduction="sum"))
        p, c = torch.softmax(logits, 1).max(1)
        preds.append(c)
        confs.append(p)
    n = len(labels_t)
    if n == 0:
        raise ValueError("no rows to evaluate on")
    pred = torch.cat(preds)
    confusion = torch.bincount(labels_t * NUM_CLASSES + pred, minlength=NUM_CLASSES ** 2).reshape(NUM_CLASSES, NUM_CLASSES)
    return {"accuracy": float((pred == labels_t).sum()) / n, "loss": loss / n, "rows": n,
            "confusion_matrix": confusion.tolist(), "predictions": pred.numpy(), "confidences": torch.cat(confs).numpy()}


@torch.no_grad()
def probabilities(module: torch.nn.Module, pixels_u8: np.ndarray, batch_rows: int = 1024) -> np.ndarray:
    """Softmax class probabilities, (n, classes) float32."""
    out = []
    for start in range(0, len(pixels_u8), batch_rows):
        x = normalise(torch.from_numpy(pixels_u8[start:start + batch_rows].copy()))  # frombuffer is read-only
        out.append(torch.softmax(module(x), dim=1).numpy())
    return np.concatenate(out) if out else np.zeros((0, NUM_CLASSES), np.float32)


def score_model(model_id, architecture: str, weights: bytes, pixels_u8: np.ndarray, labels: np.ndarray) -> dict:
    """evaluate() of a stored model (its architecture and safetensors weights) on rows in memory, with its
    id: how the retrain job scores champion and challenger, and how reports get their predictions."""
    module = build_module(architecture, weights, f"model {model_id}")
    return dict(evaluate(module, pixels_u8, labels), id=str(model_id))
