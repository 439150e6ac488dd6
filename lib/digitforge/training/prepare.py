"""What a training run needs before any rank starts, shared by the Spark job (jobs/train.py) and the
torchrun entry (python -m digitforge.training): flags and presets -> the resolved config, the snapshot
and its row-group check, and the run to resume."""
from __future__ import annotations

import argparse
import logging

from digitforge.core import config
from digitforge.core.storage import child_url
from digitforge.snapshot import shards
from digitforge.snapshot.manifest import load_manifest
from digitforge.training import checkpoints

log = logging.getLogger("digitforge.train")

# Flags that name a train.* key (None: not given, the config decides).
NAMED = {"architecture": str, "epochs": int, "batch_size": int, "lr": float, "optimizer": str, "schedule": str,
         "seed": int, "num_processes": int, "snapshot": str, "comments": str}
# Keys a resumed run must keep: the checkpoint holds this network, trained on these shards' steps.
FIXED_ON_RESUME = ("dataset", "architecture", "width")
FIXED_FOR_ONECYCLE = ("epochs", "batch_size", "num_processes", "data")


def parser(doc: str) -> argparse.ArgumentParser:
    """The flags of the train job and the torchrun entry: --dataset, --set, presets, train.* flags, --resume."""
    p = config.job_parser(doc)
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--preset", action="append", default=[], metavar="NAME",
                   help="conf/presets/NAME.yaml: recommended settings, e.g. mnist-best, fashion-best, gpu (repeatable)")
    for name, kind in NAMED.items():
        p.add_argument("--" + name.replace("_", "-"), type=kind, help=f"train.{name}")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None, help="train.augment")
    p.add_argument("--local-mode", action=argparse.BooleanOptionalAction, default=None,
                   help="train.local_mode: ranks beside the driver, or (--no-local-mode) one per executor")
    p.add_argument("--use-gpu", action=argparse.BooleanOptionalAction, default=None, help="train.use_gpu")
    p.add_argument("--resume", nargs="?", const="latest", metavar="RUN_ID",
                   help="continue a run from its last checkpoint: RUN_ID, or the latest run of this dataset "
                        "and architecture; flags given now override the run's config (e.g. more --epochs)")
    return p


def _named(args) -> dict:
    named = {f"train.{k}": getattr(args, k) for k in NAMED}
    named.update({"train.dataset": args.dataset, "train.augment": args.augment, "train.local_mode": args.local_mode,
                  "train.use_gpu": args.use_gpu})
    return named


def resolve_config(args) -> dict:
    """Defaults <- preset <- --set flags <- named flags; when resuming, the run's own config takes the
    place of the defaults, so `--resume RUN_ID` alone continues with exactly the same settings."""
    overrides = [o for name in args.preset for o in config.preset_overrides(name)] + list(args.set)
    cfg = config.resolve(overrides, **_named(args))
    cfg = config.use_keyspace(cfg, cfg["train"]["dataset"], args.keyspace)
    if not args.resume:
        return cfg
    tc = cfg["train"]
    root = config.project_location(tc["checkpoint_dir"])
    folder = checkpoints.find_run(root, tc["dataset"], tc["architecture"], args.resume,
                                  keyspace=config.dataset_info(cfg, tc["dataset"])["keyspace"])
    run = checkpoints.read_run(folder)
    cfg = config.apply_overrides(run["config"], overrides)
    for key, value in _named(args).items():
        if value is not None:
            config.set_key(cfg, key, value)
    check_resumable(run["config"]["train"], cfg["train"], checkpoints.last_epoch(folder), run["run_id"])
    cfg["train"].update(run_id=run["run_id"], resume=True, checkpoint_dir=root)
    return config.use_keyspace(config.validate(cfg), cfg["train"]["dataset"], args.keyspace)


def check_resumable(before: dict, now: dict, done_epochs: int, run_id: str) -> None:
    """Refuse to resume with settings the checkpoint cannot continue under (another network, a changed
    one-cycle length, no epochs left); log what else changed."""
    changed = [k for k in FIXED_ON_RESUME if before.get(k) != now.get(k)]
    if now["schedule"] == "onecycle":  # the one-cycle schedule's length is fixed when it starts
        changed += [k for k in FIXED_FOR_ONECYCLE if before.get(k) != now.get(k)]
    if changed:
        raise config.ConfigError(f"run {run_id} cannot resume with a different " + ", ".join(
            f"train.{k} ({before.get(k)!r} -> {now.get(k)!r})" for k in changed))
    if now["epochs"] <= done_epochs:
        raise config.ConfigError(f"run {run_id} has already trained {done_epochs} of {now['epochs']} epochs; "
                                 f"pass --epochs N with N > {done_epochs} to train on")
    diff = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k) and k not in ("run_id", "resume"))
    if diff:
        log.info("resuming run %s with changed settings: %s", run_id,
                 ", ".join(f"train.{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in diff))


def prepare_run(args, world_size: int | None = None) -> tuple[dict, dict]:
    """(resolved config, snapshot manifest), checked: the snapshot exists and has a row group per rank."""
    cfg = resolve_config(args)
    tc = cfg["train"]
    if tc["checkpoint_dir"]:
        tc["checkpoint_dir"] = config.project_location(tc["checkpoint_dir"])  # ranks run in other folders
    keyspace = config.dataset_info(cfg, tc["dataset"])["keyspace"]
    manifest = load_manifest(config.project_location(cfg["convert"]["snapshot_root"]), tc["dataset"], keyspace,
                             tc["snapshot"])
    ranks = world_size or int(tc["num_processes"])
    for split in ("train", "test"):
        shards.check_row_groups(child_url(manifest["path"], split), ranks)
    return cfg, manifest


def summary(cfg: dict, result: dict) -> dict:
    """The JSON summary a training run prints: dataset, architecture, run, epochs, accuracy, loss, seconds."""
    tc = cfg["train"]
    return {"dataset": tc["dataset"], "architecture": tc["architecture"], "run_id": result.get("run_id"),
            "epochs": result.get("epochs"), "test_accuracy": result["test_accuracy"], "test_loss": result["test_loss"],
            "train_seconds": result["train_seconds"]}
