"""Registering a finished training run from its checkpoint: `digitforge registry register RUN_ID`.

The train job records every finished run (result.json beside its checkpoints) before registering it,
so a model whose registration failed (the job exits 3 naming the run) is never lost: this registers
it later with the same id the job would have given it (write.model_id_for), so running it twice, or
after a registration that did go through, never makes a second model."""
from __future__ import annotations

import logging

from digitforge.core.config import dataset_info, project_location
from digitforge.core.connection import session
from digitforge.registry import write
from digitforge.training import checkpoints

log = logging.getLogger(__name__)


def register_run(cfg: dict, run_id: str) -> dict:
    """Register run `run_id` (under train.checkpoint_dir) unless it already is. Returns
    {"id", "run_id", "dataset", "registered": True when this call wrote it}."""
    root = project_location(cfg["train"]["checkpoint_dir"])
    folder = checkpoints.run_folder(root, run_id)
    if not checkpoints.is_run(folder):
        raise checkpoints.CheckpointError(f"no run {run_id!r} under {root} (train.checkpoint_dir)")
    run = checkpoints.read_run(folder)
    saved = checkpoints.load_result(folder)
    run_cfg = run["config"]
    dataset = run_cfg["train"]["dataset"]
    keyspace = dataset_info(cfg, dataset)["keyspace"]
    result = dict(saved["result"], run_id=run_id)
    model_id = write.model_id_for(run_id, result["weights"])
    with session(cfg, keyspace) as s:
        if s.execute("SELECT id FROM models WHERE id = %s", (model_id,)).one() is not None:
            log.info("run %s is registered already as model %s in %s", run_id, model_id, keyspace)
            checkpoints.mark_registered(folder, model_id)
            return {"id": str(model_id), "run_id": run_id, "dataset": dataset, "registered": False}
    # The registry's settings (keyspace, retries, chunk size) are this call's; the stored config the run's.
    written = write.register(cfg, dataset, result, dict(run_cfg, train=dict(run_cfg["train"], run_id=run_id)),
                             saved["lineage"], saved["comments"])
    checkpoints.mark_registered(folder, written)
    log.info("registered run %s as model %s in %s", run_id, written, keyspace)
    return {"id": str(written), "run_id": run_id, "dataset": dataset, "registered": True}
