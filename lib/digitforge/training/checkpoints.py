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

No pickle anywhere. An epoch folder is written whole (locally under a temporary name, then renamed),
then `latest` is replaced, so a run killed while writing resumes from the previous complete epoch.
The checkpoint dir is a local path or a URL (core/storage.py: s3://, hdfs://): on a cluster, storage the
driver and every executor reach.
"""
from __future__ import annotations

import json

from digitforge.core import storage
from digitforge.core.clock import now_iso, stamp

RUN_FILE, LATEST, RESULT_FILE, REGISTERED_FILE = "run.json", "latest", "result.json", "registered.json"
SETTING = "train.checkpoint_dir"
EPOCH_FILES = ("weights.safetensors", "optimizer.safetensors", "state.json")


class CheckpointError(LookupError):
    """No run or no complete checkpoint to resume from."""


def new_run_id(dataset: str, architecture: str) -> str:
    """A new run's id: <dataset>-<architecture>-<UTC stamp>."""
    return f"{dataset}-{architecture}-{stamp()}"


def _read_json(location) -> dict:
    return json.loads(storage.read_text(location, SETTING))


def _write_json(location, body: dict, indent: int = 1) -> None:
    storage.write_text(location, json.dumps(body, indent=indent, default=str), SETTING)


def run_folder(root, run_id: str) -> str:
    return storage.join(root, run_id)


def is_run(folder) -> bool:
    """True when folder holds a run (its run.json)."""
    return storage.exists(storage.join(folder, RUN_FILE), SETTING)


def start_run(root, run_id: str, config: dict) -> str:
    """Create the run folder and record the run's config (once; a resumed run keeps the original)."""
    folder = run_folder(root, run_id)
    if not is_run(folder):
        tc = config["train"]
        _write_json(storage.join(folder, RUN_FILE), {"run_id": run_id, "dataset": tc["dataset"],
                                                     "architecture": tc["architecture"], "created": now_iso(),
                                                     "config": config}, indent=2)
    return folder


def read_run(folder) -> dict:
    """The run.json of a run folder (its dataset, architecture, created, config)."""
    return _read_json(storage.join(folder, RUN_FILE))


def find_run(root, dataset: str, architecture: str, run_id: str | None = None,
             keyspace: str | None = None) -> str:
    """The folder of run_id, or (run_id None/'latest') of the newest run of this dataset and
    architecture (and, given one, trained on this keyspace's rows) that has at least one complete epoch."""
    if run_id and run_id != "latest":
        folder = run_folder(root, run_id)
        if not is_run(folder):
            raise CheckpointError(f"no run {run_id!r} under {root} (no {RUN_FILE} in {folder})")
        if last_epoch(folder) is None:
            raise CheckpointError(f"run {run_id!r} in {folder} has no complete epoch to resume from")
        return folder
    runs = []
    for name in storage.subfolders(root, SETTING):
        folder = run_folder(root, name)
        if not is_run(folder):
            continue
        meta = read_run(folder)
        if (meta["dataset"] == dataset and meta["architecture"] == architecture
                and keyspace in (None, _keyspace(meta)) and last_epoch(folder) is not None):
            runs.append((meta["created"], folder))
    if not runs:
        where = f" in keyspace {keyspace}" if keyspace else ""
        raise CheckpointError(f"no run of {architecture} on {dataset}{where} with a checkpoint under {root} to resume")
    return max(runs)[1]


def _keyspace(meta: dict) -> str | None:
    """The keyspace a run's rows came from, from the config it stored."""
    return meta.get("config", {}).get("datasets", {}).get(meta["dataset"], {}).get("keyspace")


def _latest_folder(folder) -> str | None:
    """The newest complete epoch's folder, or None."""
    latest = storage.join(folder, LATEST)
    if not storage.exists(latest, SETTING):
        return None
    epoch_dir = storage.join(folder, storage.read_text(latest, SETTING).strip())
    return epoch_dir if storage.exists(storage.join(epoch_dir, "state.json"), SETTING) else None


def last_epoch(folder) -> int | None:
    """The newest complete epoch of a run, or None."""
    epoch_dir = _latest_folder(folder)
    return _read_json(storage.join(epoch_dir, "state.json"))["epoch"] if epoch_dir else None


def save(folder, epoch: int, weights: bytes, optimizer: bytes, state: dict, keep: int = 2) -> str:
    """Write one epoch's checkpoint (weights and optimizer as safetensors bytes, state as JSON)."""
    name = f"epoch-{epoch:04d}"
    final = storage.join(folder, name)
    storage.write_folder(final, dict(zip(EPOCH_FILES, (weights, optimizer,
                                                       json.dumps(dict(state, epoch=epoch), indent=1).encode()))),
                         SETTING)
    storage.write_text(storage.join(folder, LATEST), name, SETTING)
    epochs = [n for n in storage.subfolders(folder, SETTING) if n.startswith("epoch-") and n[6:].isdigit()]
    for old in sorted(epochs)[:-keep]:
        storage.delete_folder(storage.join(folder, old))
    return final


def load(folder) -> dict:
    """{'weights': bytes, 'optimizer': bytes, 'state': dict} of the newest complete epoch."""
    epoch_dir = _latest_folder(folder)
    if epoch_dir is None:
        raise CheckpointError(f"{folder} holds no complete checkpoint")
    weights, optimizer, state = (storage.read_bytes(storage.join(epoch_dir, f), SETTING) for f in EPOCH_FILES)
    return {"weights": weights, "optimizer": optimizer, "state": json.loads(state)}


def save_result(folder, result: dict, lineage: dict, comments: str) -> None:
    """Record a finished run (everything but the artifacts' bytes: those are the last epoch's
    checkpoint) so that it can be registered again later: `digitforge registry register RUN_ID`."""
    body = {k: v for k, v in result.items() if k not in ("weights", "optimizer")}
    _write_json(storage.join(folder, RESULT_FILE), {"result": body, "lineage": lineage, "comments": comments})


def load_result(folder) -> dict:
    """The finished run's result (with the last checkpoint's weights and optimizer), lineage, comments."""
    path, name = storage.join(folder, RESULT_FILE), str(folder).rstrip("/").rsplit("/", 1)[-1]
    if not storage.exists(path, SETTING):
        raise CheckpointError(f"run {name} has not finished training (no {path}): resume it with "
                              f"`scripts/submit.sh train --resume {name}`")
    saved = _read_json(path)
    ckpt = load(folder)
    if ckpt["state"]["epoch"] != saved["result"].get("epochs"):
        raise CheckpointError(f"run {name}: its last checkpoint is epoch {ckpt['state']['epoch']}, its result "
                              f"is of epoch {saved['result'].get('epochs')}: not the same model")
    saved["result"].update(weights=ckpt["weights"], optimizer=ckpt["optimizer"])
    return saved


def mark_registered(folder, model_id: str) -> None:
    _write_json(storage.join(folder, REGISTERED_FILE), {"model_id": str(model_id), "at": now_iso()})
