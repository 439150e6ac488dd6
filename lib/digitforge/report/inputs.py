"""What one model's report shows: report/data.py gathers it, report/render.py draws it."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class ReportInputs:
    """What one model's report shows. `model` is the registry's record of it (id, dataset, architecture,
    test_accuracy, test_loss, config, metrics with confusion_matrix / per_class / history, lineage)."""
    model: dict
    class_names: list[str]
    state_dict: dict | None = None             # the weights (torch tensors or numpy arrays)
    test_images: dict | None = None            # row index -> (28, 28) uint8: the most confidently wrong rows (the grid's)
    test_labels: np.ndarray | None = None      # (N,)
    test_predictions: np.ndarray | None = None  # (N,)
    test_confidences: np.ndarray | None = None  # (N,) probability of the predicted class, optional
    label_counts: dict[str, list[int]] = field(default_factory=dict)  # split -> 10 counts
    test_source: str = ""                      # where the test rows came from (shown under the grid)
    misclassified_limit: int = 40              # images in the misclassified grid
