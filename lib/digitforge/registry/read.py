"""Reading the registry: models of a dataset, the best one, one model's details, and its artifacts
(reassembled from chunks, checked against their sha256; never unpickled).

A model reference (`ref`) is a model id (uuid) or an alias name (optionally written `@name`).
"""
from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path

from digitforge.core.clock import iso_utc
from digitforge.core.config import dataset_info
from digitforge.core.connection import session
from digitforge.core.digest import sha256
from digitforge.registry import chunks

log = logging.getLogger(__name__)

ARTIFACTS = {"network": "weights", "optimizer": "optimizer"}  # column -> key of train_fn's result
SUMMARY_COLUMNS = "id, dataset, architecture, test_accuracy, test_loss, train_seconds, upload_date, comments"
META_COLUMNS = (SUMMARY_COLUMNS + ", config, metrics, lineage, network_sha256, network_size, network_chunks, "
                "optimizer_sha256, optimizer_size, optimizer_chunks")
# The original demo's models rows (kept by `schema apply`) hold pickle.dumps(state_dict) blobs, no checksum
# and no metrics: listed and shown as such, never unpickled, never best, never an alias's model.
ORIGINAL_DEMO, NOT_LOADABLE = "original-demo", "pickled: not loadable"


class RegistryError(LookupError):
    """A registry lookup or write that cannot be done; the message names the model or alias."""


class ModelNotFound(RegistryError):
    """No models row with that id (or the alias points at a missing one)."""


class AliasNotFound(RegistryError):
    """The reference is neither a model id nor a set alias."""


class ArtifactError(RegistryError):
    """An artifact is missing, corrupt (checksum mismatch) or unsafe; the message names model and chunk."""


def is_original_demo(row) -> bool:
    """A models row with no weights checksum: the original demo's (digitforge writes one with every model)."""
    return row.network_sha256 is None


def _summary(row) -> dict:
    return {"id": str(row.id), "dataset": row.dataset, "architecture": row.architecture,
            "test_accuracy": row.test_accuracy, "test_loss": row.test_loss, "train_seconds": row.train_seconds,
            "upload_date": iso_utc(row.upload_date), "comments": row.comments,
            "origin": ORIGINAL_DEMO if is_original_demo(row) else "digitforge"}


def _aliases(s) -> dict[str, uuid.UUID]:
    return {r.alias: r.model_id for r in s.execute("SELECT DISTINCT alias, model_id FROM aliases") if r.model_id}


def resolve_ref(s, keyspace: str, ref) -> tuple[uuid.UUID, str | None]:
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


def _details(s, row, aliases: dict[str, uuid.UUID]) -> dict:
    d = _summary(row)
    d.update(config=json.loads(row.config or "{}"), metrics=json.loads(row.metrics or "{}"),
             lineage=json.loads(row.lineage or "{}"),
             artifacts={a: _artifact_info(row, a) for a in ARTIFACTS if getattr(row, f"{a}_sha256")},
             aliases=sorted(a for a, mid in aliases.items() if mid == row.id))
    if is_original_demo(row):  # the blobs' sizes, read as bytes: never unpickled
        blobs = s.execute(f"SELECT {', '.join(ARTIFACTS)} FROM models WHERE id = %s", (row.id,)).one()
        d["artifacts"] = {a: {"bytes": len(getattr(blobs, a)), "format": NOT_LOADABLE}
                          for a in ARTIFACTS if getattr(blobs, a) is not None}
    return d


def refuse_original_demo(s, keyspace: str, model_id: uuid.UUID, alias: str) -> None:
    """An alias names a model to load: an original-demo model (a pickle) can be none's."""
    row = s.execute("SELECT network_sha256 FROM models WHERE id = %s", (model_id,)).one()
    if row is not None and is_original_demo(row):
        raise RegistryError(f"model {model_id} in {keyspace} is an {ORIGINAL_DEMO} model ({NOT_LOADABLE}): it cannot "
                            f"be {alias!r}; train a model on its data instead (convert, then train)")


def list_models(cfg: dict, dataset: str) -> list[dict]:
    """Every model of a dataset, oldest first, with the aliases pointing at it (original-demo rows too,
    marked by their origin)."""
    keyspace = dataset_info(cfg, dataset)["keyspace"]
    with session(cfg, keyspace) as s:
        aliases = _aliases(s)
        rows = []
        for r in s.execute(f"SELECT {SUMMARY_COLUMNS}, network_sha256 FROM models"):
            m = _summary(r)
            m["aliases"] = sorted(a for a, mid in aliases.items() if mid == r.id)
            rows.append(m)
    return sorted(rows, key=lambda r: r["upload_date"] or "")


def best(cfg: dict, dataset: str, by: str = "accuracy") -> dict:
    """The best model of a dataset: highest test accuracy (ties: lower loss), or lowest test loss."""
    if by not in ("accuracy", "loss"):
        raise ValueError(f"--by must be accuracy or loss, not {by!r}")
    models = [m for m in list_models(cfg, dataset) if m["origin"] != ORIGINAL_DEMO
              and m["test_accuracy"] is not None and m["test_loss"] is not None]
    if not models:
        raise RegistryError(f"no models registered for dataset {dataset!r}")
    if by == "accuracy":
        return max(models, key=lambda m: (m["test_accuracy"], -m["test_loss"]))
    return min(models, key=lambda m: (m["test_loss"], -m["test_accuracy"]))


def show(cfg: dict, dataset: str, ref) -> dict:
    """Everything the registry knows about one model but its artifacts' bytes."""
    keyspace = dataset_info(cfg, dataset)["keyspace"]
    with session(cfg, keyspace) as s:
        model_id, _ = resolve_ref(s, keyspace, ref)
        return _details(s, _meta(s, model_id), _aliases(s))


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
    actual = sha256(data)
    if actual != expected:
        raise ArtifactError(f"{what}: {artifact} checksum mismatch (sha256 {actual[:12]}..., "
                            f"the models row says {expected[:12]}...): the stored bytes are corrupt")
    return data


def fetch(cfg: dict, dataset: str, ref="champion", artifact: str = "network") -> tuple[dict, bytes]:
    """(the model's details, its checked artifact bytes) for a model id or alias."""
    keyspace = dataset_info(cfg, dataset)["keyspace"]
    with session(cfg, keyspace) as s:
        model_id, alias = resolve_ref(s, keyspace, ref)
        row = _meta(s, model_id)
        what = f"model {model_id}" + (f" (alias {alias!r})" if alias else "")
        data = _read_artifact(s, row, artifact, what)
        details = _details(s, row, _aliases(s))
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
            "sha256": sha256(weights), "bytes": len(weights)}

