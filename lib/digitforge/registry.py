"""The model registry: the `models` table of each dataset's keyspace."""
from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime, timezone

from . import artifacts
from .config import dataset_info
from .cql import session

log = logging.getLogger(__name__)

SUMMARY_COLUMNS = "id, dataset, architecture, test_accuracy, test_loss, train_seconds, upload_date, comments"


class RegistryError(LookupError):
    pass


def register(cfg: dict, dataset: str, result: dict, config: dict, lineage: dict, comments: str = "") -> uuid.UUID:
    """Write one trained model (artifacts + metrics) as a new row. Returns its id."""
    keyspace = dataset_info(cfg, dataset)["keyspace"]
    model_id = uuid.uuid4()
    with session(cfg, keyspace) as s:
        s.execute(
            "INSERT INTO models (id, network, optimizer, upload_date, comments, dataset, architecture, "
            "test_accuracy, test_loss, train_seconds, network_sha256, optimizer_sha256, config, metrics, lineage) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (model_id, result["weights"], result["optimizer"], datetime.now(timezone.utc), comments, dataset,
             config["train"]["architecture"], float(result["test_accuracy"]), float(result["test_loss"]),
             float(result["train_seconds"]), artifacts.sha256(result["weights"]), artifacts.sha256(result["optimizer"]),
             json.dumps(config), json.dumps(result["metrics"]), json.dumps(lineage)))
    log.info("registered model %s in %s.models", model_id, keyspace)
    return model_id


def _summary(row) -> dict:
    return {"id": str(row.id), "dataset": row.dataset, "architecture": row.architecture,
            "test_accuracy": row.test_accuracy, "test_loss": row.test_loss, "train_seconds": row.train_seconds,
            "upload_date": row.upload_date.replace(tzinfo=timezone.utc).isoformat() if row.upload_date else None,
            "comments": row.comments}


def list_models(cfg: dict, dataset: str) -> list[dict]:
    keyspace = dataset_info(cfg, dataset)["keyspace"]
    with session(cfg, keyspace) as s:
        rows = [_summary(r) for r in s.execute(f"SELECT {SUMMARY_COLUMNS} FROM models")]
    return sorted(rows, key=lambda r: r["upload_date"] or "")


def best(cfg: dict, dataset: str, by: str = "accuracy") -> dict:
    """The best model of a dataset: highest test accuracy (ties: lower loss), or lowest test loss."""
    models = [m for m in list_models(cfg, dataset) if m["test_accuracy"] is not None]
    if not models:
        raise RegistryError(f"no models registered for dataset {dataset!r}")
    if by == "accuracy":
        return max(models, key=lambda m: (m["test_accuracy"], -m["test_loss"]))
    if by == "loss":
        return min(models, key=lambda m: (m["test_loss"], -m["test_accuracy"]))
    raise ValueError(f"--by must be accuracy or loss, not {by!r}")
