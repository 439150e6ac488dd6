"""The challenger's config: the champion's stored training recipe on top of this code's defaults."""
from __future__ import annotations

import copy

from digitforge.core import config as configmod


# Keys of the champion's train section that belong to its own run, never to the challenger's, and
# keys that describe the machine it ran on (ranks, GPUs, folders), which come from this run's config.
RUN_KEYS = {"dataset", "snapshot", "run_id", "resume", "comments"}


RUNTIME_KEYS = {"num_processes", "local_mode", "use_gpu", "threads_per_rank", "checkpoint_dir", "data", "test_batch_size",
                "max_restarts"}


def challenger_config(champion_config: dict | None, overrides: list[str], dataset: str) -> tuple[dict, list[str]]:
    """Defaults, then the champion's stored train section (its recipe: the keys this code still knows,
    not its run's or its machine's), then the `--set` overrides: the challenger trains like the
    champion unless told otherwise.
    Returns (config, notes on what was taken or dropped)."""
    cfg = configmod.load_defaults()
    notes = []
    if champion_config:
        stored = champion_config.get("train", {})
        dropped = sorted(k for k in stored if k not in cfg["train"] and k not in RUN_KEYS)
        for key, value in stored.items():
            if key in cfg["train"] and key not in RUN_KEYS | RUNTIME_KEYS:
                cfg["train"][key] = copy.deepcopy(value)
        notes.append("train config from the champion" + (f" (keys unknown to this code dropped: {', '.join(dropped)})" if dropped else ""))
    else:
        notes.append("train config from conf/defaults.yaml (no champion)")
    cfg = configmod.apply_overrides(cfg, overrides)
    cfg["train"]["dataset"] = dataset
    cfg = configmod.validate(cfg)
    train_overrides = [o for o in overrides if o.strip().startswith("train.")]
    if train_overrides:
        notes.append("overridden: " + ", ".join(train_overrides))
    return cfg, notes
