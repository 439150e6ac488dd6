"""Starting training: on the Spark driver under pyspark's TorchDistributor, or under torchrun
(`python -m digitforge.training`, no Spark: a GPU box, a benchmark):

    torchrun --nproc_per_node=1 -m digitforge.training --dataset mnist --preset mnist-fast --set train.use_gpu=true
"""
from __future__ import annotations

import json
import os

from digitforge.core.logs import setup_logging
from digitforge.training import prepare
from digitforge.training.distributed import free_port
from digitforge.training.loop import train_fn


def run_distributed(config: dict, manifest: dict) -> dict:
    """Driver side: run train_fn on num_processes ranks with pyspark's TorchDistributor: in local mode
    as processes beside the driver, otherwise one rank per Spark task (a barrier stage on executors)."""
    from pyspark.ml.torch.distributor import TorchDistributor

    tc = config["train"]
    distributor = TorchDistributor(num_processes=int(tc["num_processes"]), local_mode=bool(tc["local_mode"]),
                                   use_gpu=bool(tc["use_gpu"]))
    return distributor.run(train_fn, config, manifest)


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
