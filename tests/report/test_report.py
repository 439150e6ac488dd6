"""Reports: every chart is a non-empty PNG and the HTML pages reference them (pure functions, no services)."""
import re

import numpy as np
import pytest

from digitforge.registry import artifacts
from digitforge.report.charts import first_conv_weight, misclassified_grid
from digitforge.report.inputs import ReportInputs
from digitforge.report.render import CHARTS, write_comparison, write_report
from digitforge.report.summary import class_table
from digitforge.training.models import build_model

DIGITS = [str(i) for i in range(10)]
FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def fake_inputs(architecture="net", dataset="mnist", names=DIGITS, error_rate=0.1, seed=0, n=200):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    preds = np.where(rng.random(n) < error_rate, rng.integers(0, 10, n), labels)
    cm = np.zeros((10, 10), int)
    np.add.at(cm, (labels, preds), 1)
    history = [{"epoch": e, "train_loss": 1.0 / e, "test_loss": 1.1 / e, "test_accuracy": 1 - error_rate / e}
               for e in (1, 2, 3)]
    model = {"id": f"00000000-0000-0000-0000-00000000000{seed}", "dataset": dataset, "architecture": architecture,
             "test_accuracy": float(np.trace(cm) / n), "test_loss": 0.3, "train_seconds": 12.5,
             "upload_date": "2026-01-01T00:00:00+00:00", "aliases": ["champion"],
             "config": {"train": {"architecture": architecture, "epochs": 3, "lr": 0.002}},
             "metrics": {"confusion_matrix": cm.tolist(), "history": history, "test_rows": n},
             "lineage": {"snapshot_version": "20260101T000000000000Z"}}
    return ReportInputs(
        model=model, class_names=names, state_dict=build_model(architecture).state_dict(),
        test_images=rng.integers(0, 256, (n, 28, 28)).astype(np.uint8), test_labels=labels,
        test_predictions=preds, test_confidences=rng.random(n),
        label_counts={"train": np.bincount(labels, minlength=10).tolist(), "test": [20] * 10})


def assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 2000, path


def referenced_images(page):
    return re.findall(r"<img src='([^']+)'", page.read_text())


def test_report_writes_every_chart_and_the_page_shows_them(tmp_path):
    page = write_report(fake_inputs(), tmp_path / "r")
    images = referenced_images(page)
    assert sorted(images) == sorted(f"{c}.png" for c in CHARTS)
    for name in images:
        assert_png(page.parent / name)
    text = page.read_text()
    assert "Per-class metrics" in text and "precision" in text and "champion" in text
    assert not list(page.parent.glob("*.part"))


def test_mlp_report_skips_the_filters_with_a_note(tmp_path):
    page = write_report(fake_inputs("mlp"), tmp_path)
    assert "filters.png" not in referenced_images(page)
    assert "has no convolution layer" in page.read_text()
    assert not (tmp_path / "filters.png").exists()


def test_first_conv_weight_is_the_first_4d_tensor():
    name, w = first_conv_weight(build_model("lenet5").state_dict())
    assert name == "features.0.weight" and w.shape == (20, 1, 5, 5)
    assert first_conv_weight(build_model("mlp").state_dict()) is None
    # read back from safetensors the tensors come in another order: still conv1, not conv2
    stored = artifacts.weights_from_bytes(artifacts.weights_to_bytes(build_model("net").state_dict()))
    assert first_conv_weight(stored)[0] == "conv1.weight"


def test_misclassified_grid_counts_the_wrong_ones(tmp_path):
    images = np.zeros((5, 28, 28), np.uint8)
    path, n_wrong = misclassified_grid(images, [1, 2, 3, 4, 5], [1, 0, 3, 0, 5], DIGITS, tmp_path / "m.png")
    assert n_wrong == 2
    assert_png(path)
    _, none_wrong = misclassified_grid(images, [1, 2, 3, 4, 5], [1, 2, 3, 4, 5], DIGITS, tmp_path / "n.png")
    assert none_wrong == 0


def test_class_table_from_the_confusion_matrix():
    cm = np.zeros((10, 10), int)
    cm[0, 0], cm[0, 1], cm[1, 1] = 8, 2, 10
    rows = class_table({"confusion_matrix": cm.tolist()})
    assert rows[0]["recall"] == 0.8 and rows[1]["precision"] == pytest.approx(10 / 12)
    assert rows[0]["support"] == 10


def test_comparison_digits_vs_fashion_side_by_side_with_deltas(tmp_path):
    digits = fake_inputs("net", "mnist", DIGITS, error_rate=0.02, seed=1)
    fashion = fake_inputs("net", "fashion-mnist", FASHION, error_rate=0.2, seed=2)
    page = write_comparison(digits, fashion, tmp_path)
    images = referenced_images(page)
    assert "per_class_f1.png" in images
    assert {f"a_{c}.png" for c in CHARTS} | {f"b_{c}.png" for c in CHARTS} <= set(images)
    for name in images:
        assert_png(page.parent / name)
    text = page.read_text()
    assert "A is " in text and "points more accurate" in text  # the digits model wins, in numbers
    assert "Shirt" in text and "class=neg" in text  # fashion classes named, losses marked


def test_pages_escape_what_they_show(tmp_path):
    inp = fake_inputs()
    inp.class_names = ["<script>alert(1)</script>", *inp.class_names[1:]]
    inp.model["comments"] = "a & b <b>bold</b>"
    text = write_report(inp, tmp_path).read_text()
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "a &amp; b &lt;b&gt;bold&lt;/b&gt;" in text


def test_evaluation_in_chunks_matches_one_pass_and_keeps_only_the_grids_images(tmp_path):
    """The report's scoring (inference/scoring.evaluate) reads rows a chunk at a time in any order: the same
    per-row results (sorted by id) as in one chunk, and only the most confidently wrong rows' images, which are
    the ones the grid shows."""
    import torch

    from digitforge.inference.scoring import evaluate
    from digitforge.snapshot.read import LabelledRows

    rng = np.random.default_rng(3)
    n = 500
    ids, labels = rng.permutation(n) + 1000, rng.integers(0, 10, n)
    pixels = rng.integers(0, 256, (n, 28, 28)).astype(np.uint8)
    torch.manual_seed(0)
    model = build_model("mlp")

    def chunks(size):
        return [LabelledRows(ids[i:i + size], labels[i:i + size], pixels[i:i + size], "t") for i in range(0, n, size)]

    whole, parts = evaluate(model, chunks(n), keep_wrong=7), evaluate(model, chunks(64), keep_wrong=7, batch_size=50)
    assert np.array_equal(whole["ids"], np.sort(ids)) and np.array_equal(parts["ids"], whole["ids"])
    for key in ("labels", "predictions", "confusion_matrix"):
        assert np.array_equal(np.asarray(parts[key]), np.asarray(whole[key])), key
    assert np.allclose(parts["confidences"], whole["confidences"]) and parts["loss"] == pytest.approx(whole["loss"])
    wrong = np.flatnonzero(whole["labels"] != whole["predictions"])
    grid_rows = wrong[np.argsort(-whole["confidences"][wrong], kind="stable")][:7]
    assert len(wrong) > 7 and sorted(parts["wrong_images"]) == sorted(grid_rows.tolist())
    by_id = dict(zip(ids.tolist(), pixels))
    for row, image in parts["wrong_images"].items():
        assert np.array_equal(image, by_id[int(whole["ids"][row])])
    _, n_wrong = misclassified_grid(parts["wrong_images"], parts["labels"], parts["predictions"], DIGITS,
                                    tmp_path / "g.png", parts["confidences"], 7)
    assert n_wrong == len(wrong)
