"""Writing the registry: one trained model's chunks, its models row (the commit point) and its derived
query rows (models_by_date / _accuracy / _loss, model_classes); `reindex` rebuilds the derived rows.

Every write is idempotent (same id, same values), so a write that fails with a transient error (a
timeout, too few replicas) is retried with backoff (registry.retry_attempts, registry.retry_backoff_s).
A model of a training run gets an id derived from the run and its weights, so registering the same
run again (digitforge registry register RUN_ID) writes the same rows, never a second model."""
from __future__ import annotations

import json
import logging
import uuid

from digitforge.core.clock import now_ms
from digitforge.core.config import dataset_info
from digitforge.core.connection import session
from digitforge.core.digest import sha256
from digitforge.core.retrying import Retrying
from digitforge.registry import chunks
from digitforge.registry.metrics import class_rows
from digitforge.registry.read import ARTIFACTS, SUMMARY_COLUMNS

log = logging.getLogger(__name__)


DEFAULT_CHUNK_BYTES = 1 << 20
# Names a run's model ids: uuid5(RUN_NAMESPACE, "<run id>/<weights sha256>").
RUN_NAMESPACE = uuid.UUID("5b0c3f9e-6d1a-4f55-9d59-2f1c3f7d1e13")


class RegistrationFailed(RuntimeError):
    """A model could not be registered (nothing of it is left behind); the message names the run."""


def model_id_for(run_id: str | None, weights: bytes | None) -> uuid.UUID:
    """The same id for the same run and weights (idempotent re-registration); a fresh one without a run."""
    if run_id and weights is not None:
        return uuid.uuid5(RUN_NAMESPACE, f"{run_id}/{sha256(weights)}")
    return uuid.uuid4()


def _write_chunk(s, model_id: uuid.UUID, artifact: str, seq: int, data: bytes) -> None:
    s.execute("INSERT INTO model_chunks (model_id, artifact, seq, data, sha256) VALUES (%s, %s, %s, %s, %s)",
              (model_id, artifact, seq, data, sha256(data)))


def _write_model_row(s, columns: dict) -> None:
    s.execute(f"INSERT INTO models ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})",
              tuple(columns.values()))


def _delete_model(s, model_id: uuid.UUID, row: dict | None = None, retry: "Retrying | None" = None) -> None:
    """Undo a registration that failed part way, derived rows first, chunks last (best effort, retried;
    the error that caused it is raised; what is left, `digitforge registry fsck --repair` removes)."""
    retry = retry or Retrying(1)
    try:
        if row is not None:
            retry(f"model {model_id}: deleting its derived rows", _write_index, s, row, True)
        retry(f"model {model_id}: deleting its models row", s.execute, "DELETE FROM models WHERE id = %s", (model_id,))
        for artifact in ARTIFACTS:
            retry(f"model {model_id}: deleting its {artifact} chunks", s.execute,
                  "DELETE FROM model_chunks WHERE model_id = %s AND artifact = %s", (model_id, artifact))
    except Exception as e:  # the node may be the thing that failed
        log.warning("could not clean up after failed registration of %s (%s); `digitforge registry fsck --repair` "
                    "removes what is left", model_id, e)


def _write_index(s, m: dict, delete: bool = False, class_names: list[str] | None = None) -> None:
    """The derived rows of one model (see the schema), in one logged batch: all or none of them."""
    from cassandra.query import BatchStatement, SimpleStatement

    batch = BatchStatement()
    if delete:
        batch.add(SimpleStatement("DELETE FROM models_by_date WHERE dataset = %s AND upload_date = %s AND id = %s"),
                  (m["dataset"], m["upload_date"], m["id"]))
        batch.add(SimpleStatement("DELETE FROM models_by_accuracy WHERE dataset = %s AND test_accuracy = %s "
                                  "AND test_loss = %s AND id = %s"),
                  (m["dataset"], m["test_accuracy"], m["test_loss"], m["id"]))
        batch.add(SimpleStatement("DELETE FROM models_by_loss WHERE dataset = %s AND test_loss = %s "
                                  "AND test_accuracy = %s AND id = %s"),
                  (m["dataset"], m["test_loss"], m["test_accuracy"], m["id"]))
        batch.add(SimpleStatement("DELETE FROM model_classes WHERE model_id = %s"), (m["id"],))
        s.execute(batch)
        return
    common = (m["id"], m["architecture"], m["upload_date"])
    batch.add(SimpleStatement(
        "INSERT INTO models_by_date (dataset, upload_date, id, architecture, test_accuracy, test_loss, "
        "train_seconds, comments) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"),
        (m["dataset"], m["upload_date"], m["id"], m["architecture"], m["test_accuracy"], m["test_loss"],
         m["train_seconds"], m["comments"]))
    batch.add(SimpleStatement(
        "INSERT INTO models_by_accuracy (dataset, test_accuracy, test_loss, id, architecture, upload_date) "
        "VALUES (%s, %s, %s, %s, %s, %s)"), (m["dataset"], m["test_accuracy"], m["test_loss"], *common))
    batch.add(SimpleStatement(
        "INSERT INTO models_by_loss (dataset, test_loss, test_accuracy, id, architecture, upload_date) "
        "VALUES (%s, %s, %s, %s, %s, %s)"), (m["dataset"], m["test_loss"], m["test_accuracy"], *common))
    for c in class_rows(m["metrics"], class_names):
        batch.add(SimpleStatement(
            "INSERT INTO model_classes (model_id, class, class_name, accuracy, precision, recall, f1, support) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"),
            (m["id"], c["class"], c["class_name"], c["accuracy"], c["precision"], c["recall"], c["f1"], c["support"]))
    s.execute(batch)


def register(cfg: dict, dataset: str, result: dict, config: dict, lineage: dict, comments: str = "") -> uuid.UUID:
    """Write one trained model: its chunks (if any) first, then its models row, then its derived rows,
    each write retried on transient errors. If a write still fails, what was written is removed again
    and RegistrationFailed is raised (naming the run): no model row without all its chunks, no derived
    rows without a model row. Returns the model's id (the same for the same run and weights)."""
    ds = dataset_info(cfg, dataset)
    chunk_bytes = int(cfg.get("registry", {}).get("chunk_bytes", DEFAULT_CHUNK_BYTES))
    retry = Retrying.from_config(cfg)
    run_id = result.get("run_id") or lineage.get("run_id")
    model_id = model_id_for(run_id, result.get("weights"))
    m = {"id": model_id, "dataset": dataset, "architecture": config["train"]["architecture"],
         "upload_date": now_ms(), "comments": comments or "", "test_accuracy": float(result["test_accuracy"]),
         "test_loss": float(result["test_loss"]), "train_seconds": float(result["train_seconds"]),
         "metrics": result.get("metrics") or {}}
    columns = {}
    what = f"model {model_id}" + (f" of run {run_id}" if run_id else "")
    with session(cfg, ds["keyspace"]) as s:
        step = "chunks"
        try:
            for artifact, key in ARTIFACTS.items():
                data = result.get(key)
                if data is None:
                    continue
                pieces = chunks.split(data, chunk_bytes)
                for seq, piece in enumerate(pieces):
                    retry(f"{what}: writing {artifact} chunk {seq}", _write_chunk, s, model_id, artifact, seq, piece)
                columns.update({artifact: None if pieces else data, f"{artifact}_sha256": sha256(data),
                                f"{artifact}_size": len(data), f"{artifact}_chunks": len(pieces)})
            columns.update({k: m[k] for k in ("id", "dataset", "architecture", "upload_date", "comments",
                                              "test_accuracy", "test_loss", "train_seconds")})
            columns.update(config=json.dumps(config), metrics=json.dumps(m["metrics"]), lineage=json.dumps(lineage))
            # The models row is the commit point: written only once every chunk is in.
            step = "the models row"
            retry(f"{what}: writing its models row", _write_model_row, s, columns)
            step = "the derived rows"
            retry(f"{what}: writing its derived rows", _write_index, s, m, False, ds.get("classes"))
        except BaseException as e:
            _delete_model(s, model_id, m if step == "the derived rows" else None, retry)
            if not isinstance(e, Exception):  # an interrupt stays an interrupt
                raise
            hint = f"; its checkpoint is kept: digitforge registry register {run_id}" if run_id else ""
            raise RegistrationFailed(f"{what} not registered in {ds['keyspace']}: writing {step} failed "
                                     f"({type(e).__name__}: {e}){hint}") from e
    chunked = {a: columns[f"{a}_chunks"] for a in ARTIFACTS if f"{a}_chunks" in columns}
    log.info("registered model %s in %s.models (chunks: %s)", model_id, ds["keyspace"], chunked)
    return model_id


def reindex(cfg: dict, dataset: str) -> int:
    """Rewrite every model's derived rows from its models row (models registered before these tables
    existed, or a registration cut short after its models row). Idempotent. Returns the model count."""
    ds = dataset_info(cfg, dataset)
    with session(cfg, ds["keyspace"]) as s:
        rows = list(s.execute(f"SELECT {SUMMARY_COLUMNS}, metrics FROM models"))
        for r in rows:
            m = r._asdict()
            m["metrics"] = json.loads(r.metrics or "{}")
            m["dataset"] = m["dataset"] or dataset
            m["comments"] = m["comments"] or ""
            if m["test_accuracy"] is None or m["test_loss"] is None or m["upload_date"] is None:
                log.warning("model %s has no test accuracy, loss or upload date: not indexed", r.id)
                continue
            _write_index(s, m, class_names=ds.get("classes"))
    log.info("reindexed %d models of %s", len(rows), ds["keyspace"])
    return len(rows)
