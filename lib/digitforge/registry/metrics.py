"""A model's metrics as the registry stores them per class (the model_classes query table)."""
from __future__ import annotations

import numpy as np


def class_rows(metrics: dict, class_names: list[str] | None = None) -> list[dict]:
    """Per-class rows for model_classes from a model's metrics: accuracy (= recall) and support from
    the confusion matrix (rows: true class), precision / f1 from metrics['per_class'] when present."""
    cm = np.asarray(metrics.get("confusion_matrix") or [], dtype=np.int64)
    per = metrics.get("per_class") or {}
    n = len(cm) if cm.size else len(per.get("recall") or [])
    rows = []
    for k in range(n):
        support = int(cm[k].sum()) if cm.size else None
        correct = int(cm[k, k]) if cm.size else None
        predicted = int(cm[:, k].sum()) if cm.size else None
        recall = correct / support if support else (per["recall"][k] if per.get("recall") else None)
        precision = per["precision"][k] if per.get("precision") else (correct / predicted if predicted else None)
        f1 = per["f1"][k] if per.get("f1") else None
        rows.append({"class": k, "class_name": class_names[k] if class_names and k < len(class_names) else str(k),
                     "accuracy": recall, "precision": precision, "recall": recall, "f1": f1, "support": support})
    return rows
