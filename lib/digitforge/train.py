"""Distributed training: `train_fn` runs on every rank (TorchDistributor or torchrun), reads its shard
of the snapshot with Petastorm, trains with DDP, evaluates on the test split, returns the model.

Read it like pytorch/examples mnist/main.py: train() is one epoch, test() is one evaluation.
"""
from __future__ import annotations

import logging
import os
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from . import artifacts, shards
from .logs import setup_logging
from .models import build_model, normalise

log = logging.getLogger("digitforge.train")
NUM_CLASSES = 10


def make_optimizer(model, tc: dict):
    name = tc["optimizer"].lower()
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=tc["lr"], momentum=tc["momentum"], weight_decay=tc["weight_decay"])
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
                                                   steps_per_epoch=steps_per_epoch), True
    if name == "none":
        return None, False
    raise ValueError(f"unknown schedule {tc['schedule']!r}; known: step, onecycle, none")


def train(model, optimizer, scheduler, per_batch_schedule, x, y, order, device) -> tuple[float, int]:
    """One epoch over the batches in `order` (steps, batch). Returns (summed loss, images seen)."""
    model.train()
    total = torch.zeros((), device=device)
    for idx in order:
        idx = torch.from_numpy(idx)
        data, target = x[idx].to(device, non_blocking=True), y[idx].to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(data), target)
        loss.backward()
        optimizer.step()
        if per_batch_schedule:
            scheduler.step()
        total += loss.detach() * len(idx)
    return float(total), order.size


@torch.no_grad()
def test(model, x, y, batch_size, device) -> tuple[float, torch.Tensor]:
    """Summed loss and the confusion matrix (true x predicted) over this rank's test shard."""
    model.eval()
    loss = 0.0
    confusion = torch.zeros(NUM_CLASSES, NUM_CLASSES, dtype=torch.int64)
    for start in range(0, len(x), batch_size):
        data, target = x[start:start + batch_size].to(device), y[start:start + batch_size].to(device)
        out = model(data)
        loss += float(F.cross_entropy(out, target, reduction="sum"))
        pred = out.argmax(1)
        confusion += torch.bincount(target * NUM_CLASSES + pred, minlength=NUM_CLASSES ** 2).reshape(NUM_CLASSES, NUM_CLASSES).cpu()
    return loss, confusion


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


def train_fn(config: dict, manifest: dict) -> dict:
    """Runs on every rank. Returns the same dict on every rank (TorchDistributor in local mode returns
    whichever rank finished last): weights, optimizer state, metrics, history."""
    setup_logging()
    tc = config["train"]
    use_gpu = bool(tc["use_gpu"]) and torch.cuda.is_available()
    dist.init_process_group("nccl" if use_gpu else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    if use_gpu:
        local_rank = int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count()
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
        torch.set_num_threads(int(tc["threads_per_rank"]))
    torch.manual_seed(tc["seed"])
    rng = np.random.default_rng(tc["seed"] * 1000 + rank)
    started = time.time()

    def load(split):
        url = "file://" + os.path.join(manifest["path"], split) if "://" not in manifest["path"] else f"{manifest['path']}/{split}"
        px, lb = shards.read_shard_checked(url, rank, world, manifest["rows"][split], _all_reduce)
        return normalise(torch.from_numpy(px)), torch.from_numpy(lb)

    x_train, y_train = load("train")
    x_test, y_test = load("test")
    if rank == 0:
        log.info("rank 0 of %d: %d train, %d test rows in its shard, read in %.1fs", world, len(x_train), len(x_test), time.time() - started)

    model = build_model(tc["architecture"]).to(device)
    ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if use_gpu else None)
    optimizer = make_optimizer(ddp, tc)
    steps = shards.equal_steps(len(x_train), tc["batch_size"], lambda n: _all_reduce(n, dist.ReduceOp.MAX))
    scheduler, per_batch = make_schedule(optimizer, tc, steps)
    n_test = manifest["rows"]["test"]

    history = []
    train_started = time.time()
    for epoch in range(1, tc["epochs"] + 1):
        t0 = time.time()
        order = shards.epoch_indices(len(x_train), steps, tc["batch_size"], rng)
        loss_sum, seen = train(ddp, optimizer, scheduler, per_batch, x_train, y_train, order, device)
        if scheduler is not None and not per_batch:
            scheduler.step()
        train_seconds = time.time() - t0
        loss_sum, seen = _all_reduce(loss_sum), _all_reduce(seen)
        test_loss, confusion = test(model, x_test, y_test, tc["test_batch_size"], device)
        test_loss = _all_reduce(test_loss) / n_test
        confusion = _all_reduce(confusion)
        accuracy = float(confusion.diag().sum()) / n_test
        row = {"epoch": epoch, "train_loss": round(loss_sum / seen, 6), "test_loss": round(test_loss, 6),
               "test_accuracy": round(accuracy, 6), "images_per_s": round(seen / train_seconds, 1),
               "elapsed_s": round(time.time() - train_started, 2), "lr": optimizer.param_groups[0]["lr"]}
        history.append(row)
        if rank == 0:
            log.info("epoch %d/%d  train loss %.4f  test loss %.4f  test accuracy %.2f%%  %.0f images/s  %.1fs elapsed",
                     epoch, tc["epochs"], row["train_loss"], test_loss, 100 * accuracy, row["images_per_s"], row["elapsed_s"])

    result = None
    if rank == 0:
        cm = confusion.numpy()
        result = {
            "weights": artifacts.weights_to_bytes(model.state_dict()),
            "optimizer": artifacts.optimizer_to_bytes(optimizer.state_dict()),
            "test_accuracy": history[-1]["test_accuracy"], "test_loss": history[-1]["test_loss"],
            "metrics": {"confusion_matrix": cm.tolist(), "per_class": class_metrics(cm), "history": history,
                        "test_rows": n_test, "world_size": world},
            "train_seconds": round(time.time() - train_started, 2),
            "total_seconds": round(time.time() - started, 2),
        }
    box = [result]
    dist.broadcast_object_list(box, src=0)  # every rank returns rank 0's result
    del ddp  # release the DDP model before tearing down gloo, or the process can abort at exit
    dist.barrier()
    dist.destroy_process_group()
    return box[0]


def run_distributed(config: dict, manifest: dict) -> dict:
    """Driver side: run train_fn on num_processes ranks with pyspark's TorchDistributor."""
    from pyspark.ml.torch.distributor import TorchDistributor

    tc = config["train"]
    distributor = TorchDistributor(num_processes=int(tc["num_processes"]), local_mode=bool(tc["local_mode"]),
                                   use_gpu=bool(tc["use_gpu"]))
    return distributor.run(train_fn, config, manifest)
