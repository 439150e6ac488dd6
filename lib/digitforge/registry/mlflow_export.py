"""A registered model as an MLflow model directory (MLflow's PyTorch flavor, with its pyfunc):

    DIR/MLmodel            flavors, the signature (uint8 images in, float32 probabilities out) and
                           `metadata.digitforge`: id, metrics, config, lineage, the registry's sha256
    DIR/data/model.pt2     the network traced with torch.export (MLflow's "pt2" format): a graph and
                           its weights, no pickle and no digitforge code needed to load it
    DIR/requirements.txt   mlflow and torch, the versions it was written with

`mlflow.pyfunc.load_model(DIR).predict(images)` on (n, 28, 28) uint8 images, white on black, returns
the same (n, 10) probabilities as digitforge.inference.scoring.probabilities: the normalisation and
the softmax are traced into the graph with the network.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from digitforge.core.images import COLS, NUM_CLASSES, ROWS
from digitforge.inference.modules import build_module
from digitforge.registry.read import fetch
from digitforge.training.models import normalise

log = logging.getLogger(__name__)


class ImageClassifier(torch.nn.Module):
    """uint8 images (n, 28, 28) -> class probabilities (n, 10): what the exported graph computes."""

    def __init__(self, network: torch.nn.Module):
        super().__init__()
        self.network = network

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.network(normalise(images)), dim=1)


def signature():
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    # Unnamed tensors: predict() takes the image array itself (the PyTorch flavor refuses a dict).
    return ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, ROWS, COLS))]),
                          outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, NUM_CLASSES))]))


def save(module: torch.nn.Module, details: dict, weights_sha256: str, directory: str | Path) -> Path:
    """Write `module` (an eval-mode network) as an MLflow model directory with `details` (the registry's
    view of the model) as its metadata. The directory must not exist or be empty."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no progress bars in logs
    import mlflow
    import mlflow.pytorch

    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()):
        raise FileExistsError(f"{directory} exists and is not empty: give a new folder for the MLflow model")
    metadata = {"digitforge": {k: details.get(k) for k in (
        "id", "dataset", "architecture", "test_accuracy", "test_loss", "train_seconds", "upload_date", "comments",
        "aliases", "config", "metrics", "lineage")}}
    metadata["digitforge"]["network_sha256"] = weights_sha256
    # Two images, so torch.export keeps the batch dimension dynamic (a size-1 one is specialised).
    example = np.zeros((2, ROWS, COLS), np.uint8)
    mlflow.pytorch.save_model(ImageClassifier(module).eval(), str(directory), serialization_format="pt2",
                              signature=signature(), input_example=example, metadata=metadata,
                              pip_requirements=[f"mlflow=={mlflow.__version__}",
                                                f"torch=={torch.__version__.split('+')[0]}"])
    return directory


def export(cfg: dict, dataset: str, ref, directory: str | Path) -> dict:
    """Registry model `ref` (id or alias) -> an MLflow model directory; nothing is written unless its
    weights check out against their sha256."""
    details, weights = fetch(cfg, dataset, ref)
    module = build_module(details["architecture"], weights, details.pop("ref"))
    sha = details["artifacts"]["network"]["sha256"]
    save(module, details, sha, directory)
    log.info("exported model %s as an MLflow model (PyTorch flavor, pt2) to %s", details["id"], directory)
    return {"id": details["id"], "format": "mlflow", "path": str(directory), "network_sha256": sha,
            "load_with": f"mlflow.pyfunc.load_model({str(directory)!r}).predict(images)"}
