"""Per-class precision, recall and F1 from a confusion matrix: the one place they are computed (training
stores them, the registry's model_classes rows and the reports show them). numpy only: scikit-learn or
torchmetrics would be a large dependency for three divisions."""
from __future__ import annotations

import numpy as np


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den is 0 (a class never predicted, or with no rows: scikit-learn's zero_division=0)."""
    return np.divide(num, den, out=np.zeros_like(num, dtype=float), where=den > 0)


def per_class(confusion) -> dict[str, np.ndarray]:
    """precision, recall, f1 (floats) and support, predicted (ints) per class of a confusion matrix whose
    rows are the true class and columns the predicted one."""
    cm = np.asarray(confusion, dtype=np.int64)
    tp = np.diag(cm).astype(float)
    predicted, support = cm.sum(0), cm.sum(1)
    precision, recall = _ratio(tp, predicted), _ratio(tp, support)
    return {"precision": precision, "recall": recall, "f1": _ratio(2 * precision * recall, precision + recall),
            "support": support, "predicted": predicted}


def stored_per_class(confusion, digits: int = 5) -> dict[str, list[float]]:
    """The `per_class` entry of a model's stored metrics: precision, recall and F1 per class, rounded."""
    m = per_class(confusion)
    return {k: m[k].round(digits).tolist() for k in ("precision", "recall", "f1")}
