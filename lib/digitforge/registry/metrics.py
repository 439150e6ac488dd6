"""A model's metrics as the registry stores them per class (the model_classes query table)."""
from __future__ import annotations

import numpy as np

from digitforge.core.metrics import per_class


def class_rows(metrics: dict, class_names: list[str] | None = None) -> list[dict]:
    """Per-class rows for model_classes from a model's metrics: accuracy (= recall) and support from
    the confusion matrix (rows: true class), precision / f1 from metrics['per_class'] when present.
    A value that cannot be known (a class with no test rows, no stored F1) is None, not 0."""
    cm = np.asarray(metrics.get("confusion_matrix") or [], dtype=np.int64)
    stored = metrics.get("per_class") or {}
    computed = per_class(cm) if cm.size else None
    n = len(cm) if cm.size else len(stored.get("recall") or [])
    rows = []
    for k in range(n):
        support = int(computed["support"][k]) if computed else None
        predicted = int(computed["predicted"][k]) if computed else None
        recall = float(computed["recall"][k]) if support else (stored["recall"][k] if stored.get("recall") else None)
        precision = stored["precision"][k] if stored.get("precision") else (
            float(computed["precision"][k]) if predicted else None)
        f1 = stored["f1"][k] if stored.get("f1") else None
        rows.append({"class": k, "class_name": class_names[k] if class_names and k < len(class_names) else str(k),
                     "accuracy": recall, "precision": precision, "recall": recall, "f1": f1, "support": support})
    return rows
