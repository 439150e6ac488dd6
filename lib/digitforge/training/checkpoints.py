"""Per-epoch checkpoints of a training run, so that a failed or killed run resumes where it stopped.

    <checkpoint_dir>/<run_id>/
        run.json                     dataset, architecture, created, the run's resolved config
        epoch-0003/                  one folder per epoch (the last `keep` are kept)
            weights.safetensors      model state_dict
            optimizer.safetensors    optimizer state (artifacts.optimizer_to_bytes)
            state.json               epoch, history, scheduler state, seed, seconds trained
        latest                       name of the newest complete epoch folder
        result.json                  the finished run: metrics, scores, lineage (written before it is registered)
        registered.json              the model id it was registered as

No pickle anywhere. An epoch folder is written under a temporary name and renamed, then `latest` is
replaced atomically, so a run killed while writing resumes from the previous complete epoch.
On a cluster the checkpoint dir must be a path every executor and the driver see (a shared mount).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from digitforge.core.clock import now_iso, stamp

RUN_FILE, LATEST, RESULT_FILE, REGISTERED_FILE = "run.json", "latest", "result.json", "registered.json"


class CheckpointError(LookupError):
    """No run or no complete checkpoint to resume from."""


def new_run_id(dataset: str, architecture: str) -> str:
    """A new run's id: <dataset>-<architecture>-<UTC stamp>."""
    return f"{dataset}-{architecture}-{stamp()}"


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def start_run(root: str | Path, run_id: str, config: dict) -> Path:
    """Create the run folder and record the run's config (once; a resumed run keeps the original)."""
    folder = Path(root) / run_id
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / RUN_FILE).exists():
        tc = config["train"]
        meta = {"run_id": run_id, "dataset": tc["dataset"], "architecture": tc["architecture"],
                "created": now_iso(), "config": config}
        _write_atomic(folder / RUN_FILE, json.dumps(meta, indent=2).encode())
    return folder


def read_run(folder: str | Path) -> dict:
    """The run.json of a run folder (its dataset, architecture, created, config)."""
    return json.loads((Path(folder) / RUN_FILE).read_text())


def find_run(root: str | Path, dataset: str, architecture: str, run_id: str | None = None,
             keyspace: str | None = None) -> Path:
    """The folder of run_id, or (run_id None/'latest') of the newest run of this dataset and
    architecture (and, given one, trained on this keyspace's rows) that has at least one complete epoch."""
    root = Path(root)
    if run_id and run_id != "latest":
        folder = root / run_id
        if not (folder / RUN_FILE).is_file():
            raise CheckpointError(f"no run {run_id!r} under {root} (no {RUN_FILE} in {folder})")
        if last_epoch(folder) is None:
            raise CheckpointError(f"run {run_id!r} in {folder} has no complete epoch to resume from")
        return folder
    runs = []
    for meta_path in root.glob(f"*/{RUN_FILE}"):
        meta = json.loads(meta_path.read_text())
        if (meta["dataset"] == dataset and meta["architecture"] == architecture
                and keyspace in (None, _keyspace(meta)) and last_epoch(meta_path.parent) is not None):
            runs.append((meta["created"], meta_path.parent))
    if not runs:
        where = f" in keyspace {keyspace}" if keyspace else ""
        raise CheckpointError(f"no run of {architecture} on {dataset}{where} with a checkpoint under {root} to resume")
    return max(runs)[1]


def _keyspace(meta: dict) -> str | None:
    """The keyspace a run's rows came from, from the config it stored."""
    return meta.get("config", {}).get("datasets", {}).get(meta["dataset"], {}).get("keyspace")


def last_epoch(folder: str | Path) -> int | None:
    """The newest complete epoch of a run, or None."""
    latest = Path(folder) / LATEST
    if not latest.is_file():
        return None
    state = Path(folder) / latest.read_text().strip() / "state.json"
    return json.loads(state.read_text())["epoch"] if state.is_file() else None


def save(folder: str | Path, epoch: int, weights: bytes, optimizer: bytes, state: dict, keep: int = 2) -> Path:
    """Write one epoch's checkpoint (weights and optimizer as safetensors bytes, state as JSON)."""
    folder = Path(folder)
    name = f"epoch-{epoch:04d}"
    tmp, final = folder / (name + ".tmp"), folder / name
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / "weights.safetensors").write_bytes(weights)
    (tmp / "optimizer.safetensors").write_bytes(optimizer)
    (tmp / "state.json").write_text(json.dumps(dict(state, epoch=epoch), indent=1))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    _write_atomic(folder / LATEST, name.encode())
    for old in sorted(folder.glob("epoch-[0-9][0-9][0-9][0-9]"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load(folder: str | Path) -> dict:
    """{'weights': bytes, 'optimizer': bytes, 'state': dict} of the newest complete epoch."""
    folder = Path(folder)
    if last_epoch(folder) is None:
        raise CheckpointError(f"{folder} holds no complete checkpoint")
    epoch_dir = folder / (folder / LATEST).read_text().strip()
    return {"weights": (epoch_dir / "weights.safetensors").read_bytes(),
            "optimizer": (epoch_dir / "optimizer.safetensors").read_bytes(),
            "state": json.loads((epoch_dir / "state.json").read_text())}


def save_result(folder: str | Path, result: dict, lineage: dict, comments: str) -> None:
    """Record a finished run (everything but the artifacts' bytes: those are the last epoch's
    checkpoint) so that it can be registered again later: `digitforge registry register RUN_ID`."""
    body = {k: v for k, v in result.items() if k not in ("weights", "optimizer")}
    _write_atomic(Path(folder) / RESULT_FILE, json.dumps({"result": body, "lineage": lineage, "comments": comments},
                                                         indent=1, default=str).encode())


def load_result(folder: str | Path) -> dict:
    """The finished run's result (with the last checkpoint's weights and optimizer), lineage, comments."""
    folder = Path(folder)
    path = folder / RESULT_FILE
    if not path.is_file():
        raise CheckpointError(f"run {folder.name} has not finished training (no {path}): resume it with "
                              f"`scripts/submit.sh train --resume {folder.name}`")
    saved = json.loads(path.read_text())
    ckpt = load(folder)
    if ckpt["state"]["epoch"] != saved["result"].get("epochs"):
        raise CheckpointError(f"run {folder.name}: its last checkpoint is epoch {ckpt['state']['epoch']}, its result "
                              f"is of epoch {saved['result'].get('epochs')}: not the same model")
    saved["result"].update(weights=ckpt["weights"], optimizer=ckpt["optimizer"])
    return saved


def mark_registered(folder: str | Path, model_id: str) -> None:
    _write_atomic(Path(folder) / REGISTERED_FILE, json.dumps({"model_id": str(model_id), "at": now_iso()}).encode())
