"""Starting training: on the Spark driver under pyspark's TorchDistributor, or under torchrun
(`python -m digitforge.training`, no Spark: a GPU box, a benchmark):

    torchrun --nproc_per_node=1 -m digitforge.training --dataset mnist --preset mnist-fast --set train.use_gpu=true
"""
from __future__ import annotations

import json
import logging
import os

from digitforge.core.logs import setup_logging
from digitforge.core.clock import now_iso
from digitforge.training import checkpoints, prepare
from digitforge.training.distributed import free_port
from digitforge.training.loop import train_fn


log = logging.getLogger("digitforge.train")


class TrainingFailed(RuntimeError):
    """A run failed more often than train.max_restarts allows; the message names it and how to resume."""


def _distribute(config: dict, manifest: dict) -> dict:
    from pyspark.ml.torch.distributor import TorchDistributor

    tc = config["train"]
    distributor = TorchDistributor(num_processes=int(tc["num_processes"]), local_mode=bool(tc["local_mode"]),
                                   use_gpu=bool(tc["use_gpu"]))
    return distributor.run(train_fn, config, manifest)


def run_distributed(config: dict, manifest: dict) -> dict:
    """Driver side: run train_fn on num_processes ranks with pyspark's TorchDistributor: in local mode
    as processes beside the driver, otherwise one rank per Spark task (a barrier stage on executors).

    A lost rank fails the whole attempt and TorchDistributor does not retry (nor does Spark retry a
    barrier stage), so this does: up to train.max_restarts times, the run resumes from its last epoch
    checkpoint (or starts again under the same run id if it has none yet), each restart logged and
    kept in the result's metrics["restarts"]."""
    tc = config["train"]
    if tc["checkpoint_dir"] and not tc["run_id"]:  # the driver names the run, so that it can resume it
        tc = dict(tc, run_id=checkpoints.new_run_id(tc["dataset"], tc["architecture"]))
        config = dict(config, train=tc)
    run_dir = checkpoints.run_folder(tc["checkpoint_dir"], tc["run_id"]) if tc["checkpoint_dir"] else None
    max_restarts = int(tc.get("max_restarts", 0)) if run_dir else 0
    restarts, attempt_cfg = [], config
    while True:
        try:
            result = _distribute(attempt_cfg, manifest)
            break
        except Exception as e:
            error = (str(e).strip().splitlines() or [type(e).__name__])[0]
            if len(restarts) >= max_restarts:
                resume = f"; resume it with `scripts/submit.sh train --resume {tc['run_id']}`" if run_dir else ""
                raise TrainingFailed(f"training run {tc['run_id'] or '(no checkpoints)'} failed after "
                                     f"{len(restarts)} restarts (train.max_restarts={max_restarts}): "
                                     f"{type(e).__name__}: {error}{resume}") from e
            done = checkpoints.last_epoch(run_dir) if checkpoints.is_run(run_dir) else None
            restarts.append({"restart": len(restarts) + 1, "after_epoch": done or 0, "at": now_iso(),
                             "error": f"{type(e).__name__}: {error}"})
            log.warning("training run %s failed (%s: %s); restart %d of %d %s", tc["run_id"], type(e).__name__, error,
                        len(restarts), max_restarts,
                        f"from its epoch {done} checkpoint" if done else "from the start (no checkpoint yet)")
            attempt_cfg = dict(config, train=dict(tc, resume=done is not None))
    if restarts:
        result["metrics"]["restarts"] = restarts
    return result


def main(argv=None) -> int:
    """torchrun entry: every rank resolves the same config and runs train_fn; rank 0 prints a JSON
    summary with the per-epoch history (the model is not registered: that is the Spark job's work)."""
    setup_logging()
    parser = prepare.parser(__doc__)
    parser.prog = "python -m digitforge.training"
    args = parser.parse_args(argv)
    if "RANK" not in os.environ:  # plain `python -m digitforge.training`: a world of one
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(free_port()))
    cfg, manifest = prepare.prepare_run(args, world_size=int(os.environ["WORLD_SIZE"]))
    result = train_fn(cfg, manifest)
    if os.environ["RANK"] == "0":
        print(json.dumps(dict(prepare.summary(cfg, result), history=result["metrics"]["history"],
                              precision=result["metrics"]["precision"])))
    return 0
