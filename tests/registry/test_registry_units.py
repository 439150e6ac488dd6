"""Registry pieces without services: chunking, per-class rows, building modules, batch inference."""
import types

import numpy as np
import pandas as pd
import pytest
import torch

from digitforge.core.digest import sha256
from digitforge.inference import modules as inference
from digitforge.inference.batch import predict_batches
from digitforge.registry import artifacts
from digitforge.registry import chunks
from digitforge.registry.metrics import class_rows
from digitforge.training.models import build_model, normalise


def test_small_artifacts_stay_inline_large_ones_split_in_order():
    assert chunks.split(b"x" * 100, 100) == []
    pieces = chunks.split(bytes(range(256)) * 10, 1000)
    assert [len(p) for p in pieces] == [1000, 1000, 560]
    rows = [(seq, p, sha256(p)) for seq, p in reversed(list(enumerate(pieces)))]
    assert chunks.assemble(rows, 3, "model x network") == bytes(range(256)) * 10


def test_assemble_names_missing_and_corrupt_chunks():
    pieces = chunks.split(b"abcdefghij", 3)  # 4 chunks
    rows = [(seq, p, sha256(p)) for seq, p in enumerate(pieces)]
    with pytest.raises(chunks.ChunkError, match=r"model m1 network: chunk 2 of 4 missing"):
        chunks.assemble(rows[:2] + rows[3:], 4, "model m1 network")
    bad = rows.copy()
    bad[1] = (1, b"XYZ", rows[1][2])
    with pytest.raises(chunks.ChunkError, match=r"model m1 network: chunk 1 of 4 is corrupt \(sha256 mismatch\)"):
        chunks.assemble(bad, 4, "model m1 network")
    with pytest.raises(chunks.ChunkError, match="unexpected chunk 4"):
        chunks.assemble(rows + [(4, b"", sha256(b""))], 4, "model m1 network")


def test_class_rows_from_confusion_matrix_and_class_names():
    cm = np.zeros((10, 10), int)
    cm[0, 0], cm[0, 1], cm[1, 1], cm[2, 1] = 8, 2, 10, 5
    rows = class_rows({"confusion_matrix": cm.tolist(), "per_class": {"f1": [0.5] * 10}}, list("abcdefghij"))
    assert len(rows) == 10 and rows[0]["class_name"] == "a"
    assert rows[0]["accuracy"] == 0.8 and rows[0]["support"] == 10
    assert rows[1]["precision"] == pytest.approx(10 / 17) and rows[1]["f1"] == 0.5
    assert rows[3]["accuracy"] is None and rows[3]["support"] == 0  # no test rows of that class


def test_build_module_refuses_unknown_architectures_and_mismatched_weights():
    weights = artifacts.weights_to_bytes(build_model("net").state_dict())
    assert not inference.build_module("net", weights).training
    with pytest.raises(inference.UnknownArchitecture, match=r"model 42: architecture 'resnet9000' is not known"):
        inference.build_module("resnet9000", weights, "model 42")
    with pytest.raises(inference.BadWeights, match=r"model 42: its weights do not load into a 'mlp' network"):
        inference.build_module("mlp", weights, "model 42")


def test_predict_batches_builds_once_and_matches_the_module():
    torch.manual_seed(0)
    model = build_model("mlp").eval()
    bc = types.SimpleNamespace(value=artifacts.weights_to_bytes(model.state_dict()))
    images = np.random.default_rng(0).integers(0, 256, (5, 784), dtype=np.uint8)
    pdf = pd.DataFrame({"id": np.arange(5, dtype=np.int32), "label": [1, None, 3, None, 5],
                        "pixels": [r.tobytes() for r in images]})
    out = pd.concat(predict_batches("mlp", bc)(iter([pdf.iloc[:2], pdf.iloc[2:]])))
    with torch.no_grad():
        expected = torch.softmax(model(normalise(torch.from_numpy(images))), 1).numpy()
    assert out["id"].tolist() == [0, 1, 2, 3, 4]
    assert out["predicted"].tolist() == expected.argmax(1).tolist()
    np.testing.assert_allclose(np.stack(out["probabilities"]), expected, rtol=1e-5)
    bad = pdf.assign(pixels=[b"\x00" * 784] * 4 + [b"\x00" * 10])
    with pytest.raises(ValueError, match="row id 4: pixels has 10 bytes, expected 784"):
        list(predict_batches("mlp", bc)(iter([bad])))


def test_build_module_loads_fastcnn_of_any_width():
    for width in (16, 48):
        trained = build_model("fastcnn", width)
        module = inference.build_module("fastcnn", artifacts.weights_to_bytes(trained.state_dict()))
        assert module.features[0][0].out_channels == width
        x = torch.zeros(2, 1, 28, 28)
        assert torch.equal(module(x), trained.eval()(x))
