"""A model on rows on the driver (or in a notebook): class probabilities of rows in memory, and the
evaluation, a chunk of rows at a time, that the retrain job scores champion and challenger with on the very
same test rows (reports take their predictions and misclassified images from it too)."""
from __future__ import annotations

from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F

from digitforge.core.images import NUM_CLASSES, SHAPE
from digitforge.core.progress import progress
from digitforge.inference.modules import build_module
from digitforge.training.models import normalise



@torch.no_grad()
def evaluate(module: torch.nn.Module, chunks: Iterable, keep_wrong: int = 0, batch_size: int = 1000) -> dict:
    """Accuracy, mean cross-entropy, confusion matrix (true x predicted), and per row (sorted by id) its id,
    label, predicted class and that class's probability, over labelled rows that arrive a chunk at a time
    (snapshot/read.py's LabelledRows). Only the per-row results are kept (20 bytes a row), and the images
    of the `keep_wrong` most confidently wrong rows (`wrong_images`: index in that order -> image), for
    the report's grid: memory stays bounded whatever the number of rows."""
    module.eval()
    loss, ids, labels, preds, confs = 0.0, [], [], [], []
    kept_conf, kept_ids, kept_images = np.zeros(0, np.float32), np.zeros(0, np.int64), np.zeros((0, *SHAPE), np.uint8)
    for chunk in progress(chunks, desc="evaluating", unit="chunk"):
        chunk_labels = torch.as_tensor(chunk.labels, dtype=torch.int64)
        chunk_preds, chunk_confs = [], []
        for start in range(0, len(chunk), batch_size):
            x = normalise(torch.from_numpy(np.ascontiguousarray(chunk.pixels[start:start + batch_size])))
            logits = module(x)
            loss += float(F.cross_entropy(logits, chunk_labels[start:start + batch_size], reduction="sum"))
            p, c = torch.softmax(logits, 1).max(1)
            chunk_preds.append(c.numpy())
            chunk_confs.append(p.numpy())
        if not len(chunk):
            continue
        pred, conf = np.concatenate(chunk_preds), np.concatenate(chunk_confs)
        ids.append(chunk.ids)
        labels.append(chunk.labels)
        preds.append(pred)
        confs.append(conf)
        if keep_wrong:  # this chunk's wrong rows join the kept ones; the top keep_wrong stay
            wrong = np.flatnonzero(pred != chunk.labels)
            cand_conf = np.concatenate([kept_conf, conf[wrong]])
            cand_ids = np.concatenate([kept_ids, chunk.ids[wrong]])
            top = np.lexsort((cand_ids, -cand_conf))[:keep_wrong]  # most confident first, then by id
            kept_conf, kept_ids = cand_conf[top], cand_ids[top]
            kept_images = np.concatenate([kept_images, chunk.pixels[wrong].reshape(-1, *SHAPE)])[top]
    if not ids:
        raise ValueError("no rows to evaluate on")
    ids, labels = np.concatenate(ids), np.concatenate(labels)
    order = np.argsort(ids, kind="stable")
    ids, labels = ids[order], labels[order]
    pred, conf = np.concatenate(preds)[order], np.concatenate(confs)[order]
    n = len(ids)
    confusion = np.bincount(labels * NUM_CLASSES + pred, minlength=NUM_CLASSES ** 2).reshape(NUM_CLASSES, NUM_CLASSES)
    wrong_images = dict(zip(np.searchsorted(ids, kept_ids).tolist(), kept_images))  # keyed by index in id order
    return {"accuracy": float((pred == labels).sum()) / n, "loss": loss / n, "rows": n,
            "confusion_matrix": confusion.tolist(), "ids": ids, "labels": labels, "predictions": pred,
            "confidences": conf, "wrong_images": wrong_images}


@torch.no_grad()
def probabilities(module: torch.nn.Module, pixels_u8: np.ndarray, batch_rows: int = 1024) -> np.ndarray:
    """Softmax class probabilities, (n, classes) float32."""
    out = []
    for start in range(0, len(pixels_u8), batch_rows):
        x = normalise(torch.from_numpy(pixels_u8[start:start + batch_rows].copy()))  # frombuffer is read-only
        out.append(torch.softmax(module(x), dim=1).numpy())
    return np.concatenate(out) if out else np.zeros((0, NUM_CLASSES), np.float32)


def score_model(model_id, architecture: str, weights: bytes, rows, keep_wrong: int = 0) -> dict:
    """evaluate() of a stored model (its architecture and safetensors weights) on `rows` (snapshot/read.py's
    SplitRows: one fresh pass), with its id: how the retrain job scores champion and challenger, and how
    reports get their predictions."""
    module = build_module(architecture, weights, f"model {model_id}")
    return dict(evaluate(module, rows.chunks(), keep_wrong), id=str(model_id))
