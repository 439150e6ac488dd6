"""Per-class precision / recall / F1, checked by hand on a small confusion matrix."""
import numpy as np
import pytest

from digitforge.core.metrics import per_class, stored_per_class

# rows: true class, columns: predicted class
CONFUSION = np.array([[5, 1, 0, 0],
                      [2, 3, 1, 0],
                      [0, 0, 4, 0],
                      [0, 0, 0, 0]])   # class 3: no rows and never predicted


def test_per_class_matches_the_hand_computed_values():
    m = per_class(CONFUSION)
    # class 0: 5 right of 6 true rows, 5 right of 7 predicted; F1 = 2 * 5/7 * 5/6 / (5/7 + 5/6) = 10/13
    # class 1: 3 of 6 true, 3 of 4 predicted; F1 = 2 * 0.75 * 0.5 / 1.25 = 0.6
    # class 2: 4 of 4 true, 4 of 5 predicted; F1 = 2 * 0.8 * 1 / 1.8 = 8/9
    assert m["precision"] == pytest.approx([5 / 7, 3 / 4, 4 / 5, 0.0])
    assert m["recall"] == pytest.approx([5 / 6, 1 / 2, 1.0, 0.0])
    assert m["f1"] == pytest.approx([10 / 13, 0.6, 8 / 9, 0.0])
    assert m["support"].tolist() == [6, 6, 4, 0] and m["predicted"].tolist() == [7, 4, 5, 0]


def test_stored_form_is_rounded_lists():
    stored = stored_per_class(CONFUSION)
    assert stored == {"precision": [0.71429, 0.75, 0.8, 0.0], "recall": [0.83333, 0.5, 1.0, 0.0],
                      "f1": [0.76923, 0.6, 0.88889, 0.0]}


def test_class_metrics_from_confusion_matrix():
    cm = np.zeros((10, 10), int)
    cm[0, 0], cm[0, 1], cm[1, 1] = 8, 2, 10
    m = stored_per_class(cm)
    assert m["recall"][0] == 0.8 and m["precision"][1] == pytest.approx(10 / 12, abs=1e-4)
