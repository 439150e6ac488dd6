"""The record of each retrain run in the registry keyspace (`retrain_runs`): both scores, the decision, why."""
from __future__ import annotations

import json
import logging
import uuid

from digitforge.core.clock import iso_utc, now_ms
from digitforge.core.connection import session

log = logging.getLogger(__name__)


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
            (run["dataset"], run_id, started, now_ms(), run["snapshot"],
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
    with session(cfg, keyspace) as s:
        rows = s.execute("SELECT * FROM retrain_runs WHERE dataset = %s LIMIT %s", (dataset, int(limit)))
        return [{"run_id": str(r.run_id), "started_at": iso_utc(r.started_at), "finished_at": iso_utc(r.finished_at),
                 "snapshot": r.snapshot, "champion_id": str(r.champion_id) if r.champion_id else None,
                 "challenger_id": str(r.challenger_id), "metric": r.metric, "margin": r.margin,
                 "champion_accuracy": r.champion_accuracy, "challenger_accuracy": r.challenger_accuracy,
                 "champion_loss": r.champion_loss, "challenger_loss": r.challenger_loss, "test_rows": r.test_rows,
                 "promoted": r.promoted, "reason": r.reason, "owner": r.owner} for r in rows]
