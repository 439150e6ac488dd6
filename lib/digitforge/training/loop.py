"""Distributed training: `train_fn` runs on every rank (TorchDistributor or torchrun), reads its shard
of the snapshot with Petastorm, trains with DDP, evaluates on the test split every epoch, writes a
checkpoint every epoch, returns the model.

Read it like pytorch/examples mnist/main.py: train() is one epoch, test() is one evaluation.

Without Spark (a GPU box, a benchmark):
    torchrun --nproc_per_node=1 -m digitforge.train --dataset mnist --preset mnist-fast --set train.use_gpu=true
"""
from __future__ import annotations

import logging
import os
import socket
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from digitforge.registry import artifacts
from digitforge.training import checkpoints
from digitforge.snapshot import shards
from digitforge.training.augment import random_affine, random_erase
from digitforge.core.logs import setup_logging
from digitforge.training.models import MEAN, STD, build_model

log = logging.getLogger("digitforge.train")
NUM_CLASSES = 10


def make_optimizer(model, tc: dict):
    name = tc["optimizer"].lower()
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=tc["lr"], momentum=tc["momentum"], weight_decay=tc["weight_decay"],
                               nesterov=bool(tc["nesterov"]))
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=tc["lr"], weight_decay=tc["weight_decay"])
    if name == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=tc["lr"], weight_decay=tc["weight_decay"])
    raise ValueError(f"unknown optimizer {tc['optimizer']!r}; known: sgd, adam, adamw")


def make_schedule(optimizer, tc: dict, steps_per_epoch: int):
    """Returns (scheduler, steps_each_batch): step decay steps once per epoch, one-cycle every batch."""
    name = tc["schedule"].lower()
    if name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=tc["gamma"]), False
    if name == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=tc["lr"], epochs=tc["epochs"],
                                                   steps_per_epoch=steps_per_epoch,
                                                   pct_start=float(tc["warmup"])), True
    if name == "none":
        return None, False
    raise ValueError(f"unknown schedule {tc['schedule']!r}; known: step, onecycle, none")


def autocast_dtype(tc: dict, device: torch.device) -> torch.dtype | None:
    """precision auto: bf16 autocast on GPUs, fp32 on CPUs; bf16 or fp32 force it either way."""
    precision = str(tc["precision"]).lower()
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp32":
        return None
    raise ValueError(f"unknown precision {precision!r}; known: auto, bf16, fp32")


def to_input(pixels: torch.Tensor, tc: dict, device: torch.device, training: bool) -> torch.Tensor:
    """uint8 (N, 784) -> normalised float (N, 1, 28, 28) on the device, augmented when training."""
    x = pixels.to(device, non_blocking=True).reshape(-1, 1, 28, 28).float().div_(255.0)
    if training and tc["augment"]:
        x = random_affine(x, shift=tc["augment_shift"], rotate=tc["augment_rotate"], scale=tc["augment_scale"],
                          flip=bool(tc["augment_flip"]))
        x = random_erase(x, float(tc["augment_erase"]))
    x = (x - MEAN) / STD
    return x.contiguous(memory_format=torch.channels_last) if tc["channels_last"] else x


def train(model, optimizer, scheduler, per_batch_schedule, batches, steps, device, tc, amp) -> tuple[float, int]:
    """One epoch: `steps` batches from the iterator `batches`. Returns (summed loss, images seen)."""
    model.train()
    total = torch.zeros((), device=device)
    seen = 0
    for _ in range(steps):
        pixels, labels = next(batches)
        data, target = to_input(pixels, tc, device, True), labels.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
            loss = F.cross_entropy(model(data), target, label_smoothing=float(tc["label_smoothing"]))
        loss.backward()
        optimizer.step()
        if per_batch_schedule:
            scheduler.step()
        total += loss.detach().float() * len(target)
        seen += len(target)
    return float(total), seen


@torch.no_grad()
def test(model, x, y, batch_size, device, tc, amp) -> tuple[float, torch.Tensor]:
    """Summed loss and the confusion matrix (true x predicted) over this rank's test shard."""
    model.eval()
    loss = torch.zeros((), device=device, dtype=torch.float64)
    confusion = torch.zeros(NUM_CLASSES * NUM_CLASSES, dtype=torch.int64, device=device)
    for start in range(0, len(x), batch_size):
        data, target = to_input(x[start:start + batch_size], tc, device, False), y[start:start + batch_size].to(device)
        with torch.autocast(device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
            out = model(data).float()
        loss += F.cross_entropy(out, target, reduction="sum").double()
        confusion += torch.bincount(target * NUM_CLASSES + out.argmax(1), minlength=NUM_CLASSES ** 2)
    return float(loss), confusion.reshape(NUM_CLASSES, NUM_CLASSES).cpu()


def _all_reduce(value, op=dist.ReduceOp.SUM):
    t = torch.as_tensor(value, dtype=torch.float64 if isinstance(value, float) else torch.int64)
    dist.all_reduce(t, op=op)
    return t.item() if t.dim() == 0 else t


def class_metrics(confusion: np.ndarray) -> dict:
    tp = np.diag(confusion).astype(float)
    precision = np.divide(tp, confusion.sum(0), out=np.zeros_like(tp), where=confusion.sum(0) > 0)
    recall = np.divide(tp, confusion.sum(1), out=np.zeros_like(tp), where=confusion.sum(1) > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp), where=(precision + recall) > 0)
    return {"precision": precision.round(5).tolist(), "recall": recall.round(5).tolist(), "f1": f1.round(5).tolist()}


def epoch_seed(seed: int, rank: int, epoch: int) -> int:
    """The random state of an epoch on a rank depends on (seed, rank, epoch) only, so a resumed run
    shuffles and augments exactly as the uninterrupted run would have (no RNG state to carry)."""
    return int(np.random.SeedSequence([int(seed), rank, epoch]).generate_state(1)[0])


def setup_device(tc: dict) -> tuple[torch.device, str]:
    """(device, process-group backend). GPU ranks use the GPU TorchDistributor (or torchrun) gave
    them: TorchDistributor sets CUDA_VISIBLE_DEVICES per task, so LOCAL_RANK modulo the visible
    devices picks the rank's own."""
    if tc["use_gpu"]:
        if not torch.cuda.is_available():
            raise RuntimeError(f"train.use_gpu is true but this rank sees no CUDA device "
                               f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r})")
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
        return device, "nccl"
    torch.set_num_threads(int(tc["threads_per_rank"]))
    return torch.device("cpu"), "gloo"


def _split_url(manifest: dict, split: str) -> str:
    path = manifest["path"]
    return f"{path}/{split}" if "://" in path else "file://" + os.path.join(path, split)


def _in_memory_batches(x, y, steps, batch_size, rng):
    """One epoch of shuffled batches from tensors (on the device when training on a GPU)."""
    order = torch.from_numpy(shards.epoch_indices(len(x), steps, batch_size, rng)).to(x.device)
    for idx in order:
        yield x[idx], y[idx]


class TrainData:
    """A rank's training batches: its shard held in memory (on the GPU when there is one), or streamed
    from the snapshot every epoch. Either way every rank takes the same number of steps per epoch."""

    def __init__(self, tc: dict, manifest: dict, rank: int, world: int, device: torch.device, seed: int):
        self.batch_size = tc["batch_size"]
        if tc["data"] == "stream":
            self.steps = max(1, -(-manifest["rows"]["train"] // (world * self.batch_size)))
            self._reader = shards.stream_batches(_split_url(manifest, "train"), rank, world, self.batch_size,
                                                 epoch_seed(seed, rank, 0))
            self._stream = ((torch.from_numpy(px), torch.from_numpy(lb)) for px, lb in self._reader)
            self.rows = "streamed"
        elif tc["data"] == "memory":
            self._reader = None
            x, y = _read_split(manifest, "train", rank, world)
            self.x, self.y = x.to(device), y.to(device)  # a GPU holds the shard: no host copies per step
            self.steps = shards.equal_steps(len(x), self.batch_size, lambda n: _all_reduce(n, dist.ReduceOp.MAX))
            self.rows = len(x)
        else:
            raise ValueError(f"unknown train.data {tc['data']!r}; known: memory, stream")

    def epoch(self, rng: np.random.Generator):
        if self._reader is not None:
            return self._stream
        return _in_memory_batches(self.x, self.y, self.steps, self.batch_size, rng)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()  # stops Petastorm's reader threads


def _read_split(manifest: dict, split: str, rank: int, world: int) -> tuple[torch.Tensor, torch.Tensor]:
    px, lb = shards.read_shard_checked(_split_url(manifest, split), rank, world, manifest["rows"][split], _all_reduce)
    return torch.from_numpy(px), torch.from_numpy(lb)


def _rank_info(rank: int, device: torch.device) -> dict:
    import digitforge

    return {"rank": rank, "host": socket.gethostname(), "pid": os.getpid(), "cwd": os.getcwd(),
            "device": str(device), "package": os.path.dirname(digitforge.__file__)}


def _start_run(config: dict, tc: dict, rank: int) -> tuple[dict, str | None]:
    """A new run gets its id from rank 0 (every rank learns it); rank 0 records the run's folder."""
    if not tc["checkpoint_dir"]:
        if tc["resume"]:
            raise ValueError("train.resume needs train.checkpoint_dir")
        return tc, None
    box = [tc["run_id"] or checkpoints.new_run_id(tc["dataset"], tc["architecture"])]
    dist.broadcast_object_list(box, src=0)
    tc = dict(tc, run_id=box[0])
    if rank == 0:
        checkpoints.start_run(tc["checkpoint_dir"], tc["run_id"], dict(config, train=tc))
    return tc, os.path.join(tc["checkpoint_dir"], tc["run_id"])


def _restore(run_dir: str, rank: int, model, optimizer, scheduler) -> dict:
    """Rank 0 reads the run's last checkpoint and hands it to every rank; returns its state
    (epoch, history, train_seconds)."""
    box = [checkpoints.load(run_dir) if rank == 0 else None]
    dist.broadcast_object_list(box, src=0)
    ckpt = box[0]
    model.load_state_dict(artifacts.weights_from_bytes(ckpt["weights"]))
    optimizer.load_state_dict(artifacts.optimizer_from_bytes(ckpt["optimizer"]))
    if scheduler is not None and ckpt["state"].get("scheduler"):
        scheduler.load_state_dict(ckpt["state"]["scheduler"])
    return ckpt["state"]


def train_fn(config: dict, manifest: dict) -> dict:
    """Runs on every rank. Returns the same dict on every rank (TorchDistributor in local mode returns
    whichever rank finished last): weights, optimizer state, metrics, history."""
    setup_logging()
    tc = config["train"]
    device, backend = setup_device(tc)
    dist.init_process_group(backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    amp = autocast_dtype(tc, device)
    seed = int(tc["seed"])
    torch.manual_seed(seed)
    started = time.time()
    ranks = [None] * world
    dist.all_gather_object(ranks, _rank_info(rank, device))
    if rank == 0:
        log.info("%d ranks (%s): %s", world, backend, "; ".join(f"rank {r['rank']} on {r['host']} pid {r['pid']} "
                                                                 f"{r['device']}" for r in ranks))

    data = TrainData(tc, manifest, rank, world, device, seed)
    x_test, y_test = _read_split(manifest, "test", rank, world)
    if rank == 0:
        log.info("rank 0 of %d: %s train rows, %d test rows in its shard, read in %.1fs; %d steps of %d per epoch",
                 world, data.rows, len(x_test), time.time() - started, data.steps, tc["batch_size"])

    model = build_model(tc["architecture"], tc["width"] or None)
    if tc["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    model = model.to(device)
    optimizer = make_optimizer(model, tc)
    scheduler, per_batch = make_schedule(optimizer, tc, data.steps)
    tc, run_dir = _start_run(config, tc, rank)
    history, seconds_before, first_epoch = [], 0.0, 1
    if tc["resume"]:
        state = _restore(run_dir, rank, model, optimizer, scheduler)
        history, seconds_before, first_epoch = state["history"], state["train_seconds"], state["epoch"] + 1
        if rank == 0:
            log.info("resuming run %s after epoch %d of %d", tc["run_id"], first_epoch - 1, tc["epochs"])
    ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    n_test = manifest["rows"]["test"]

    train_started = time.time()
    confusion = None
    for epoch in range(first_epoch, tc["epochs"] + 1):
        t0 = time.time()
        eseed = epoch_seed(seed, rank, epoch)
        torch.manual_seed(eseed)
        loss_sum, seen = train(ddp, optimizer, scheduler, per_batch, data.epoch(np.random.default_rng(eseed)),
                               data.steps, device, tc, amp)
        if scheduler is not None and not per_batch:
            scheduler.step()
        train_seconds = time.time() - t0
        loss_sum, seen = _all_reduce(loss_sum), _all_reduce(seen)
        test_loss, confusion = test(model, x_test, y_test, tc["test_batch_size"], device, tc, amp)
        test_loss = _all_reduce(test_loss) / n_test
        confusion = _all_reduce(confusion)
        accuracy = float(confusion.diag().sum()) / n_test
        row = {"epoch": epoch, "train_loss": round(loss_sum / seen, 6), "test_loss": round(test_loss, 6),
               "test_accuracy": round(accuracy, 6), "images_per_s": round(seen / train_seconds, 1),
               "elapsed_s": round(seconds_before + time.time() - train_started, 2), "lr": optimizer.param_groups[0]["lr"]}
        history.append(row)
        if rank == 0:
            log.info("epoch %d/%d  train loss %.4f  test loss %.4f  test accuracy %.2f%%  %.0f images/s  %.1fs elapsed",
                     epoch, tc["epochs"], row["train_loss"], test_loss, 100 * accuracy, row["images_per_s"], row["elapsed_s"])
            if run_dir:
                checkpoints.save(run_dir, epoch, artifacts.weights_to_bytes(model.state_dict()),
                                 artifacts.optimizer_to_bytes(optimizer.state_dict()),
                                 {"history": history, "train_seconds": row["elapsed_s"], "seed": seed, "world_size": world,
                                  "scheduler": scheduler.state_dict() if scheduler is not None else None})

    data.close()
    result = None
    if rank == 0:
        cm = confusion.numpy()
        result = {
            "weights": artifacts.weights_to_bytes(model.state_dict()),
            "optimizer": artifacts.optimizer_to_bytes(optimizer.state_dict()),
            "test_accuracy": history[-1]["test_accuracy"], "test_loss": history[-1]["test_loss"],
            "metrics": {"confusion_matrix": cm.tolist(), "per_class": class_metrics(cm), "history": history,
                        "test_rows": n_test, "world_size": world, "ranks": ranks,
                        "precision": str(amp).replace("torch.", "") if amp else "float32",
                        "resumed_from_epoch": first_epoch - 1 if tc["resume"] else None},
            "train_seconds": history[-1]["elapsed_s"],
            "total_seconds": round(time.time() - started, 2),
            "run_id": tc["run_id"] or None, "epochs": history[-1]["epoch"],
        }
    box = [result]
    dist.broadcast_object_list(box, src=0)  # every rank returns rank 0's result
    del ddp  # release the DDP model before tearing down gloo, or the process can abort at exit
    dist.barrier()
    dist.destroy_process_group()
    return box[0]


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
    import json

    from digitforge.training import prepare as train_setup

    setup_logging()
    args = train_setup.parser(__doc__).parse_args(argv)
    if "RANK" not in os.environ:  # plain `python -m digitforge.train`: a world of one
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(train_setup.free_port()))
    cfg, manifest = train_setup.prepare(args, world_size=int(os.environ["WORLD_SIZE"]))
    result = train_fn(cfg, manifest)
    if os.environ["RANK"] == "0":
        print(json.dumps(dict(train_setup.summary(cfg, result), history=result["metrics"]["history"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
