"""The numbers a report shows besides its charts: per-class table, headline metrics, a comparison's verdict."""
from __future__ import annotations

import numpy as np

from digitforge.core.images import NUM_CLASSES
from digitforge.core.metrics import per_class

from digitforge.report.inputs import ReportInputs



def class_table(metrics: dict) -> list[dict]:
    """Per class: precision, recall, F1 and support, from the stored per_class metrics or the
    confusion matrix."""
    cm = np.asarray(metrics.get("confusion_matrix") or np.zeros((NUM_CLASSES, NUM_CLASSES)), dtype=np.int64)
    stored, computed = metrics.get("per_class") or {}, per_class(cm)
    precision, recall, f1 = (stored.get(k) or computed[k] for k in ("precision", "recall", "f1"))
    return [{"class": i, "precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
             "support": int(computed["support"][i])} for i in range(len(cm))]


def headline(model: dict) -> dict:
    """The headline numbers of a model's page: test accuracy and loss, test rows, epochs, train seconds."""
    m = model.get("metrics") or {}
    history = m.get("history") or []
    return {"test accuracy": model.get("test_accuracy"), "test loss": model.get("test_loss"),
            "test rows": m.get("test_rows"), "epochs": len(history) or None,
            "train seconds": model.get("train_seconds")}


def verdict(a: ReportInputs, b: ReportInputs) -> str:
    """One sentence with numbers: which model is better, and each model's weakest classes."""
    acc_a, acc_b = a.model.get("test_accuracy"), b.model.get("test_accuracy")
    parts = []
    if acc_a is not None and acc_b is not None:
        d = 100 * (acc_b - acc_a)
        who = "B" if d > 0 else "A"
        parts.append(f"{who} is {abs(d):.2f} points more accurate ({100 * acc_a:.2f}% vs {100 * acc_b:.2f}%).")
    for tag, inp in (("A", a), ("B", b)):
        rows = sorted(class_table(inp.model.get("metrics") or {}), key=lambda r: r["f1"])[:3]
        if rows:
            weak = ", ".join(f"{inp.class_names[r['class']]} (F1 {r['f1']:.3f})" for r in rows)
            parts.append(f"{tag}'s weakest classes: {weak}.")
    return " ".join(parts)
