"""Distributed training: `train_fn` runs on every rank (TorchDistributor or torchrun, see launch.py),
reads its shard of the snapshot with Petastorm, trains with DDP, evaluates on the test split every
epoch, writes a checkpoint every epoch, returns the model.

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

from digitforge.core import storage
from digitforge.core.images import NUM_CLASSES
from digitforge.core.logs import setup_logging
from digitforge.core.metrics import stored_per_class
from digitforge.registry import artifacts
from digitforge.training import checkpoints, tensorboard
from digitforge.training.data import TrainData, epoch_seed, read_split, to_input
from digitforge.training.distributed import all_reduce, rank_info, setup_device
from digitforge.training.models import build_model
from digitforge.training.optim import make_optimizer, make_schedule
from digitforge.training.precision import autocast_dtype, warn_if_slow_bf16

log = logging.getLogger("digitforge.train")


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
    return tc, checkpoints.run_folder(tc["checkpoint_dir"], tc["run_id"])


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
    storage.configure(config)  # a rank is a fresh process: the snapshot's s3:// endpoint comes with the config
    tc = config["train"]
    device, backend = setup_device(tc)
    dist.init_process_group(backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    amp = autocast_dtype(tc, device)
    seed = int(tc["seed"])
    torch.manual_seed(seed)
    started = time.time()
    ranks = [None] * world
    dist.all_gather_object(ranks, rank_info(rank, device))
    if rank == 0:
        log.info("%d ranks (%s): %s", world, backend, "; ".join(f"rank {r['rank']} on {r['host']} pid {r['pid']} "
                                                                 f"{r['device']}" for r in ranks))

    data = TrainData(tc, manifest, rank, world, device, seed)
    x_test, y_test = read_split(manifest, "test", rank, world)
    if rank == 0:
        log.info("rank 0 of %d: %s train rows, %d test rows in its shard, read in %.1fs; %d steps of %d per epoch",
                 world, data.rows, len(x_test), time.time() - started, data.steps, tc["batch_size"])

    model = build_model(tc["architecture"], tc["width"] or None)
    if tc["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    model = model.to(device)
    if rank == 0 and len(x_test):
        warn_if_slow_bf16(tc, device, model, to_input(x_test[:tc["batch_size"]], tc, device, False),
                          y_test[:tc["batch_size"]].to(device))
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

    events = tensorboard.EpochLog(run_dir, first_epoch, dict(config, train=tc)) if rank == 0 and tensorboard.writes_to(run_dir) else None
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
        loss_sum, seen = all_reduce(loss_sum), all_reduce(seen)
        test_loss, confusion = test(model, x_test, y_test, tc["test_batch_size"], device, tc, amp)
        test_loss = all_reduce(test_loss) / n_test
        confusion = all_reduce(confusion)
        accuracy = float(confusion.diag().sum()) / n_test
        row = {"epoch": epoch, "train_loss": round(loss_sum / seen, 6), "test_loss": round(test_loss, 6),
               "test_accuracy": round(accuracy, 6), "images_per_s": round(seen / train_seconds, 1),
               "elapsed_s": round(seconds_before + time.time() - train_started, 2), "lr": optimizer.param_groups[0]["lr"]}
        history.append(row)
        if rank == 0:
            log.info("epoch %d/%d  train loss %.4f  test loss %.4f  test accuracy %.2f%%  %.0f images/s  %.1fs elapsed",
                     epoch, tc["epochs"], row["train_loss"], test_loss, 100 * accuracy, row["images_per_s"], row["elapsed_s"])
            if events:
                events.epoch(row)
            if run_dir:
                checkpoints.save(run_dir, epoch, artifacts.weights_to_bytes(model.state_dict()),
                                 artifacts.optimizer_to_bytes(optimizer.state_dict()),
                                 {"history": history, "train_seconds": row["elapsed_s"], "seed": seed, "world_size": world,
                                  "scheduler": scheduler.state_dict() if scheduler is not None else None})

    if confusion is None:  # every epoch was done before a restart: evaluate the restored model
        _, confusion = test(model, x_test, y_test, tc["test_batch_size"], device, tc, amp)
        confusion = all_reduce(confusion)
    data.close()
    if events:
        events.close()
    result = None
    if rank == 0:
        cm = confusion.numpy()
        result = {
            "weights": artifacts.weights_to_bytes(model.state_dict()),
            "optimizer": artifacts.optimizer_to_bytes(optimizer.state_dict()),
            "test_accuracy": history[-1]["test_accuracy"], "test_loss": history[-1]["test_loss"],
            "metrics": {"confusion_matrix": cm.tolist(), "per_class": stored_per_class(cm), "history": history,
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
