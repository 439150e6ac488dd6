"""Nightly retraining, the parts jobs/retrain.py puts together: the challenger's config, the promotion
decision, and the record of each run in the registry (`retrain_runs`).

The champion only ever improves: a challenger replaces it only when, scored on the very same test rows,
it is better by at least `retrain.margin` (accuracy points as a fraction, or loss).
"""
from __future__ import annotations

import copy
import json
import logging
import uuid
from datetime import datetime, timezone

from digitforge.core import config as configmod
from digitforge.core.cql import session

log = logging.getLogger(__name__)

# Keys of the champion's train section that belong to its own run, never to the challenger's, and
# keys that describe the machine it ran on (ranks, GPUs, folders), which come from this run's config.
RUN_KEYS = {"dataset", "snapshot", "run_id", "resume", "comments"}
RUNTIME_KEYS = {"num_processes", "local_mode", "use_gpu", "threads_per_rank", "checkpoint_dir", "data", "test_batch_size"}


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
    train_overrides = [o for o in overrides if o.strip().startswith("train.")]
    if train_overrides:
        notes.append("overridden: " + ", ".join(train_overrides))
    return cfg, notes


def decide(champion: dict | None, challenger: dict, margin: float, metric: str = "accuracy") -> dict:
    """Promote or keep. champion / challenger: {"id", "accuracy", "loss"} scored on the same rows.
    accuracy: promote if challenger - champion >= margin (and > 0); loss: if champion - challenger >= margin
    (and > 0). No champion: the challenger becomes champion."""
    if metric not in ("accuracy", "loss"):
        raise ValueError(f"retrain.metric must be accuracy or loss, not {metric!r}")
    if margin < 0:
        raise ValueError(f"retrain.margin must be >= 0, not {margin}")
    if champion is None:
        return {"promote": True, "improvement": None,
                "reason": f"no champion yet: challenger {challenger['id']} (accuracy {challenger['accuracy']:.4f}, "
                          f"loss {challenger['loss']:.4f}) becomes champion"}
    if metric == "accuracy":
        gain = challenger["accuracy"] - champion["accuracy"]
        scores = f"accuracy {challenger['accuracy']:.4f} vs champion's {champion['accuracy']:.4f} ({gain:+.4f})"
    else:
        gain = champion["loss"] - challenger["loss"]
        scores = f"loss {challenger['loss']:.4f} vs champion's {champion['loss']:.4f} ({-gain:+.4f})"
    promote = gain > 0 and gain >= margin - 1e-12
    if promote:
        verdict = f"better by at least the margin {margin:g}: promoted"
    elif gain > 0:
        verdict = f"better, but by less than the margin {margin:g}: champion kept"
    else:
        verdict = "not better: champion kept"
    reason = f"challenger {challenger['id']} {scores} on the same {challenger.get('rows', '?')} test rows: {verdict}"
    return {"promote": promote, "improvement": gain, "reason": reason}


def record_run(cfg: dict, keyspace: str, run: dict) -> uuid.UUID:
    """One row in `<keyspace>.retrain_runs` per run: both scores, the decision and why."""
    from cassandra.util import uuid_from_time

    started = run["started_at"]
    run_id = uuid_from_time(started)
    with session(cfg, keyspace) as s:
        s.execute(
            "INSERT INTO retrain_runs (dataset, run_id, started_at, finished_at, snapshot, champion_id, challenger_id, "
            "metric, margin, champion_accuracy, challenger_accuracy, champion_loss, challenger_loss, test_rows, "
            "promoted, reason, owner, details) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (run["dataset"], run_id, started, datetime.now(timezone.utc), run["snapshot"],
             uuid.UUID(run["champion"]["id"]) if run.get("champion") else None, uuid.UUID(run["challenger"]["id"]),
             run["metric"], float(run["margin"]),
             run["champion"]["accuracy"] if run.get("champion") else None, run["challenger"]["accuracy"],
             run["champion"]["loss"] if run.get("champion") else None, run["challenger"]["loss"],
             int(run["challenger"]["rows"]), bool(run["promote"]), run["reason"], run.get("owner", ""),
             json.dumps(run.get("details", {}), default=str)))
    log.info("retrain run %s recorded in %s.retrain_runs: %s", run_id, keyspace, "promoted" if run["promote"] else "kept")
    return run_id


def runs(cfg: dict, keyspace: str, dataset: str, limit: int = 20) -> list[dict]:
    """The latest retrain runs of a dataset, newest first."""
    def iso(ts):
        return ts.replace(tzinfo=timezone.utc).isoformat() if ts else None

    with session(cfg, keyspace) as s:
        rows = s.execute("SELECT * FROM retrain_runs WHERE dataset = %s LIMIT %s", (dataset, int(limit)))
        return [{"run_id": str(r.run_id), "started_at": iso(r.started_at), "finished_at": iso(r.finished_at),
                 "snapshot": r.snapshot, "champion_id": str(r.champion_id) if r.champion_id else None,
                 "challenger_id": str(r.challenger_id), "metric": r.metric, "margin": r.margin,
                 "champion_accuracy": r.champion_accuracy, "challenger_accuracy": r.challenger_accuracy,
                 "champion_loss": r.champion_loss, "challenger_loss": r.challenger_loss, "test_rows": r.test_rows,
                 "promoted": r.promoted, "reason": r.reason, "owner": r.owner} for r in rows]
