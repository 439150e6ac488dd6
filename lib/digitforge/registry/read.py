"""The model registry of each dataset keyspace: models, their artifacts, aliases.

- `models` is the truth: one row per model (the original demo's id, network, optimizer, upload_date,
  comments, plus metrics, config, lineage and a sha256 per artifact).
- Artifacts (safetensors, never pickle) up to registry.chunk_bytes stay inline in the network /
  optimizer blobs; larger ones go to `model_chunks`, written before the models row.
- models_by_date / models_by_accuracy / models_by_loss / model_classes are derived from each row so
  that plain CQL can answer the registry's questions; `reindex` rebuilds them.
- Aliases (`champion`, ...) live in `aliases`, changed by lightweight transactions with their history.

A model reference (`ref`) is a model id (uuid) or an alias name (optionally written `@name`).
"""
from __future__ import annotations

import getpass
import json
import logging
import re
import uuid
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from digitforge.registry import chunks
from digitforge.core.config import dataset_info
from digitforge.core.cql import session

log = logging.getLogger(__name__)

ARTIFACTS = {"network": "weights", "optimizer": "optimizer"}  # column -> key of train_fn's result
SUMMARY_COLUMNS = "id, dataset, architecture, test_accuracy, test_loss, train_seconds, upload_date, comments"
META_COLUMNS = (SUMMARY_COLUMNS + ", config, metrics, lineage, network_sha256, network_size, network_chunks, "
                "optimizer_sha256, optimizer_size, optimizer_chunks")
DEFAULT_CHUNK_BYTES = 1 << 20
ALIAS_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")


class RegistryError(LookupError):
    pass


class ModelNotFound(RegistryError):
    pass


class AliasNotFound(RegistryError):
    pass


class ArtifactError(RegistryError):
    """An artifact is missing, corrupt (checksum mismatch) or unsafe; the message names model and chunk."""


# ---------------------------------------------------------------------------------------- writing

def _now_ms() -> datetime:
    """Cassandra timestamps hold milliseconds: round here so every table gets the very same value."""
    now = datetime.now(timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


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


def _write_chunk(s, model_id: uuid.UUID, artifact: str, seq: int, data: bytes) -> None:
    s.execute("INSERT INTO model_chunks (model_id, artifact, seq, data, sha256) VALUES (%s, %s, %s, %s, %s)",
              (model_id, artifact, seq, data, chunks.sha256(data)))


def _delete_model(s, model_id: uuid.UUID, row: dict | None = None) -> None:
    """Undo a registration that failed part way (best effort; the error that caused it is re-raised)."""
    try:
        if row is not None:
            _write_index(s, row, delete=True)
        s.execute("DELETE FROM models WHERE id = %s", (model_id,))
        for artifact in ARTIFACTS:
            s.execute("DELETE FROM model_chunks WHERE model_id = %s AND artifact = %s", (model_id, artifact))
    except Exception as e:  # the node may be the thing that failed
        log.warning("could not clean up after failed registration of %s: %s", model_id, e)


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
    """Write one trained model: its chunks (if any) first, then its models row, then its derived rows.
    If any write fails, what was written is removed again and the error is raised: no model row
    without all its chunks, no derived rows without a model row. Returns the new model's id."""
    ds = dataset_info(cfg, dataset)
    chunk_bytes = int(cfg.get("registry", {}).get("chunk_bytes", DEFAULT_CHUNK_BYTES))
    model_id = uuid.uuid4()
    m = {"id": model_id, "dataset": dataset, "architecture": config["train"]["architecture"],
         "upload_date": _now_ms(), "comments": comments or "", "test_accuracy": float(result["test_accuracy"]),
         "test_loss": float(result["test_loss"]), "train_seconds": float(result["train_seconds"]),
         "metrics": result.get("metrics") or {}}
    columns = {}
    with session(cfg, ds["keyspace"]) as s:
        try:
            for artifact, key in ARTIFACTS.items():
                data = result.get(key)
                if data is None:
                    continue
                pieces = chunks.split(data, chunk_bytes)
                for seq, piece in enumerate(pieces):
                    _write_chunk(s, model_id, artifact, seq, piece)
                columns.update({artifact: None if pieces else data, f"{artifact}_sha256": chunks.sha256(data),
                                f"{artifact}_size": len(data), f"{artifact}_chunks": len(pieces)})
            columns.update({k: m[k] for k in ("id", "dataset", "architecture", "upload_date", "comments",
                                              "test_accuracy", "test_loss", "train_seconds")})
            columns.update(config=json.dumps(config), metrics=json.dumps(m["metrics"]), lineage=json.dumps(lineage))
            # The models row is the commit point: written only once every chunk is in.
            s.execute(f"INSERT INTO models ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})",
                      tuple(columns.values()))
        except BaseException:
            _delete_model(s, model_id)
            raise
        try:
            _write_index(s, m, class_names=ds.get("classes"))
        except BaseException:
            _delete_model(s, model_id, m)
            raise
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


# ---------------------------------------------------------------------------------------- reading

def _iso(ts) -> str | None:
    return ts.replace(tzinfo=timezone.utc).isoformat() if ts else None


def _summary(row) -> dict:
    return {"id": str(row.id), "dataset": row.dataset, "architecture": row.architecture,
            "test_accuracy": row.test_accuracy, "test_loss": row.test_loss, "train_seconds": row.train_seconds,
            "upload_date": _iso(row.upload_date), "comments": row.comments}


def _aliases(s) -> dict[str, uuid.UUID]:
    return {r.alias: r.model_id for r in s.execute("SELECT DISTINCT alias, model_id FROM aliases") if r.model_id}


def _resolve(s, keyspace: str, ref) -> tuple[uuid.UUID, str | None]:
    """(model id, alias or None) of a reference; raises naming the id or alias when it is unknown."""
    text = str(ref).strip()
    try:
        model_id, alias = uuid.UUID(text), None
    except ValueError:
        alias = text[1:] if text.startswith("@") else text
        row = s.execute("SELECT model_id FROM aliases WHERE alias = %s LIMIT 1", (alias,)).one()
        if row is None or row.model_id is None:
            known = ", ".join(sorted(_aliases(s))) or "none set"
            raise AliasNotFound(f"no model id or alias {alias!r} in {keyspace} (aliases: {known}; "
                                "set one with `digitforge registry promote ID --alias NAME`)") from None
        model_id = row.model_id
    if s.execute("SELECT id FROM models WHERE id = %s", (model_id,)).one() is None:
        via = f"alias {alias!r} points at model {model_id}, which" if alias else f"model {model_id}"
        raise ModelNotFound(f"{via} is not in {keyspace}.models")
    return model_id, alias


def _meta(s, model_id: uuid.UUID):
    return s.execute(f"SELECT {META_COLUMNS} FROM models WHERE id = %s", (model_id,)).one()


def _artifact_info(row, artifact: str) -> dict:
    return {"sha256": getattr(row, f"{artifact}_sha256"), "bytes": getattr(row, f"{artifact}_size"),
            "chunks": getattr(row, f"{artifact}_chunks") or 0}


def _details(row, aliases: dict[str, uuid.UUID]) -> dict:
    d = _summary(row)
    d.update(config=json.loads(row.config or "{}"), metrics=json.loads(row.metrics or "{}"),
             lineage=json.loads(row.lineage or "{}"),
             artifacts={a: _artifact_info(row, a) for a in ARTIFACTS if getattr(row, f"{a}_sha256")},
             aliases=sorted(a for a, mid in aliases.items() if mid == row.id))
    return d


def list_models(cfg: dict, dataset: str) -> list[dict]:
    """Every model of a dataset, oldest first, with the aliases pointing at it."""
    keyspace = dataset_info(cfg, dataset)["keyspace"]
    with session(cfg, keyspace) as s:
        aliases = _aliases(s)
        rows = []
        for r in s.execute(f"SELECT {SUMMARY_COLUMNS} FROM models"):
            m = _summary(r)
            m["aliases"] = sorted(a for a, mid in aliases.items() if mid == r.id)
            rows.append(m)
    return sorted(rows, key=lambda r: r["upload_date"] or "")


def best(cfg: dict, dataset: str, by: str = "accuracy") -> dict:
    """The best model of a dataset: highest test accuracy (ties: lower loss), or lowest test loss."""
    if by not in ("accuracy", "loss"):
        raise ValueError(f"--by must be accuracy or loss, not {by!r}")
    models = [m for m in list_models(cfg, dataset) if m["test_accuracy"] is not None and m["test_loss"] is not None]
    if not models:
        raise RegistryError(f"no models registered for dataset {dataset!r}")
    if by == "accuracy":
        return max(models, key=lambda m: (m["test_accuracy"], -m["test_loss"]))
    return min(models, key=lambda m: (m["test_loss"], -m["test_accuracy"]))


def show(cfg: dict, dataset: str, ref) -> dict:
    """Everything the registry knows about one model but its artifacts' bytes."""
    keyspace = dataset_info(cfg, dataset)["keyspace"]
    with session(cfg, keyspace) as s:
        model_id, _ = _resolve(s, keyspace, ref)
        return _details(_meta(s, model_id), _aliases(s))


def _read_artifact(s, row, artifact: str, what: str) -> bytes:
    """The artifact's bytes, reassembled from its chunks if chunked, checked against its sha256."""
    expected = getattr(row, f"{artifact}_sha256")
    n = getattr(row, f"{artifact}_chunks") or 0
    if n == 0:
        data = s.execute(f"SELECT {artifact} FROM models WHERE id = %s", (row.id,)).one()[0]
        if data is None:
            raise ArtifactError(f"{what}: no {artifact} stored (inline column empty, no chunks)")
    else:
        rows = s.execute("SELECT seq, data, sha256 FROM model_chunks WHERE model_id = %s AND artifact = %s",
                         (row.id, artifact))
        try:
            data = chunks.assemble(((r.seq, r.data, r.sha256) for r in rows), n, f"{what} {artifact}")
        except chunks.ChunkError as e:
            raise ArtifactError(str(e)) from None
    if not expected:
        # The original demo stored pickle.dumps(state_dict) with no checksum: never unpickle it.
        kind = "a pickle" if data[:1] == b"\x80" else "unchecked bytes"
        raise ArtifactError(f"{what}: {artifact} has no sha256 and holds {kind}; digitforge loads only "
                            "checksummed safetensors (re-register the model)")
    actual = chunks.sha256(data)
    if actual != expected:
        raise ArtifactError(f"{what}: {artifact} checksum mismatch (sha256 {actual[:12]}..., "
                            f"the models row says {expected[:12]}...): the stored bytes are corrupt")
    return data


def fetch(cfg: dict, dataset: str, ref="champion", artifact: str = "network") -> tuple[dict, bytes]:
    """(the model's details, its checked artifact bytes) for a model id or alias."""
    keyspace = dataset_info(cfg, dataset)["keyspace"]
    with session(cfg, keyspace) as s:
        model_id, alias = _resolve(s, keyspace, ref)
        row = _meta(s, model_id)
        what = f"model {model_id}" + (f" (alias {alias!r})" if alias else "")
        data = _read_artifact(s, row, artifact, what)
        details = _details(row, _aliases(s))
    details["ref"] = what
    return details, data


def load_model(ref="champion", dataset: str = "mnist", cfg: dict | None = None):
    """The registered model `ref` (id or alias, default: the champion) as an eval-mode torch module,
    its weights checked against their sha256. model.digitforge holds its registry details."""
    from digitforge.core import config as configmod
    from digitforge.inference.modules import build_module

    cfg = cfg or configmod.resolve()
    details, weights = fetch(cfg, dataset, ref)
    module = build_module(details["architecture"], weights, details["ref"])
    module.digitforge = details
    return module


def export(cfg: dict, dataset: str, ref, path: str | Path) -> dict:
    """Write the model's weights as a .safetensors file (the stored bytes, so the sha256 matches) and
    a .json beside it with its config, metrics and lineage. `path` is a .safetensors file name or a
    folder (then <id>.safetensors there). Nothing is written unless the weights check out."""
    details, weights = fetch(cfg, dataset, ref)
    path = Path(path)
    target = path if path.suffix == ".safetensors" else path / f"{details['id']}.safetensors"
    target.parent.mkdir(parents=True, exist_ok=True)
    sidecar = target.with_suffix(".json")
    details.pop("ref")
    for dest, data in ((target, weights), (sidecar, (json.dumps(details, indent=2) + "\n").encode())):
        tmp = dest.with_name(dest.name + ".part")
        tmp.write_bytes(data)
        tmp.replace(dest)
    log.info("exported model %s to %s and %s", details["id"], target, sidecar)
    return {"id": details["id"], "weights": str(target), "metadata": str(sidecar),
            "sha256": chunks.sha256(weights), "bytes": len(weights)}


# ---------------------------------------------------------------------------------------- aliases

def promote(cfg: dict, dataset: str, ref, alias: str = "champion", reason: str = "", attempts: int = 5) -> dict:
    """Point `alias` at model `ref`, and record the change (when, from, to, why, who), in one
    conditional batch on the alias's partition: it applies only if the alias still points where it
    pointed when read (IF model_id = <that>), so concurrent promotions never lose an update.
    An unknown model or alias name changes nothing."""
    from cassandra.query import BatchStatement, SimpleStatement
    from cassandra.util import uuid_from_time

    if not ALIAS_NAME.match(alias or "") or _is_uuid(alias):
        raise ValueError(f"alias {alias!r}: use a letter then letters, digits, '_', '.' or '-' (at most 64), "
                         "not a model id")
    keyspace = dataset_info(cfg, dataset)["keyspace"]
    with session(cfg, keyspace) as s:
        model_id, _ = _resolve(s, keyspace, ref)
        for _ in range(attempts):
            row = s.execute("SELECT model_id FROM aliases WHERE alias = %s LIMIT 1", (alias,)).one()
            current = row.model_id if row else None
            if current == model_id:
                log.info("alias %s already points at %s", alias, model_id)
                return {"alias": alias, "model_id": str(model_id), "previous": str(current), "changed": False}
            now = _now_ms()
            batch = BatchStatement()
            batch.add(SimpleStatement("UPDATE aliases SET model_id = %s WHERE alias = %s IF model_id = %s"),
                      (model_id, alias, current))
            batch.add(SimpleStatement("INSERT INTO aliases (alias, change_id, changed_at, from_model, to_model, "
                                      "reason, changed_by) VALUES (%s, %s, %s, %s, %s, %s, %s)"),
                      (alias, uuid_from_time(now), now, current, model_id, reason or "", _user()))
            if s.execute(batch).was_applied:
                log.info("alias %s: %s -> %s (%s)", alias, current, model_id, reason or "no reason given")
                return {"alias": alias, "model_id": str(model_id), "previous": str(current) if current else None,
                        "changed": True, "changed_at": now.isoformat()}
            log.info("alias %s changed while promoting; reading it again", alias)
    raise RegistryError(f"alias {alias!r} kept changing during {attempts} attempts to promote {model_id}; try again")


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
        return True
    except ValueError:
        return False


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


def aliases(cfg: dict, dataset: str) -> list[dict]:
    """Every alias with the model it points at and its history (newest change first)."""
    keyspace = dataset_info(cfg, dataset)["keyspace"]
    out = {}
    with session(cfg, keyspace) as s:
        for r in s.execute("SELECT alias, model_id, changed_at, from_model, to_model, reason, changed_by FROM aliases"):
            a = out.setdefault(r.alias, {"alias": r.alias, "model_id": str(r.model_id) if r.model_id else None,
                                         "history": []})
            if r.to_model:
                a["history"].append({"changed_at": _iso(r.changed_at), "from": str(r.from_model) if r.from_model else None,
                                     "to": str(r.to_model), "reason": r.reason, "by": r.changed_by})
    return sorted(out.values(), key=lambda a: a["alias"])
