"""Training speed: the loader alone (Petastorm make_batch_reader vs per-row make_reader vs in-memory
tensors), the training step, and seconds of training to 99.0% MNIST test accuracy.

    PYTHONPATH=lib .venv/bin/python bench/train.py [--set convert.snapshot_root=...] [--preset mnist-fast]

Reads the latest MNIST snapshot (run ingest + convert first). The training runs the real train_fn
under torchrun (no Spark): 2 CPU ranks, or one rank per GPU when CUDA is available. Prints one line
per figure; the last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time

import numpy as np
import torch

from digitforge.core import config
from digitforge.core.logs import setup_logging
from digitforge.core.storage import child_url
from digitforge.snapshot import shards
from digitforge.snapshot.manifest import load_manifest
from digitforge.training.data import to_input

log = logging.getLogger("bench.train")


def batch_reader_img_s(url: str) -> tuple[float, np.ndarray, np.ndarray]:
    """Petastorm make_batch_reader, pixels decoded with one frombuffer a batch (shards.read_shard).
    One untimed pass first, so neither reader pays for a cold page cache or first imports."""
    shards.read_shard(url, 0, 1)
    t = time.perf_counter()
    px, lb = shards.read_shard(url, 0, 1)
    return len(px) / (time.perf_counter() - t), px, lb


def row_reader_img_s(url: str, limit: int) -> float:
    """Petastorm's per-row make_reader (decodes each row through the snapshot's Unischema)."""
    from petastorm import make_reader

    n, t = 0, time.perf_counter()
    with make_reader(url, schema_fields=["label", "pixels"], num_epochs=1, workers_count=2,
                     shuffle_row_groups=False) as reader:
        for row in reader:
            np.frombuffer(row.pixels, dtype=np.uint8)
            n += 1
            if n == limit:
                break
    return n / (time.perf_counter() - t)


def in_memory_img_s(px: np.ndarray, lb: np.ndarray, batch_size: int, tc: dict) -> float:
    """Shuffled batches out of the tensors a rank holds, normalised as the training step gets them."""
    x, y = torch.from_numpy(px), torch.from_numpy(lb)
    steps = len(x) // batch_size
    order = torch.from_numpy(shards.epoch_indices(len(x), steps, batch_size, np.random.default_rng(0)))
    t = time.perf_counter()
    for idx in order:
        data, target = to_input(x[idx], dict(tc, augment=False), torch.device("cpu"), True), y[idx]
    return steps * batch_size / (time.perf_counter() - t)


def train_run(presets: list[str], overrides: list[str], gpus: int) -> tuple[dict, float]:
    nproc = gpus or 2
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "digitforge.training", "--dataset", "mnist", "--set", "train.checkpoint_dir=",
           *[a for p in presets for a in ("--preset", p)], *[a for o in overrides for a in ("--set", o)]]
    if gpus:
        cmd += ["--use-gpu"]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-6000:])
        raise SystemExit(f"training exited {proc.returncode}")
    for line in proc.stderr.splitlines():
        if "digitforge.train" in line:
            log.info("  %s", line.split("digitforge.train: ", 1)[-1])
    return json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1]), wall


def seconds_to(history: list[dict], target: float) -> float | None:
    return next((h["elapsed_s"] for h in history if h["test_accuracy"] >= target), None)


def main() -> int:
    setup_logging()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config overrides (also for training)")
    p.add_argument("--preset", action="append", default=None, help="training preset(s) (default: mnist-fast)")
    p.add_argument("--row-limit", type=int, default=0, help="rows read with the per-row make_reader (0: all)")
    args = p.parse_args()
    cfg = config.resolve(args.set)
    manifest = load_manifest(config.project_path(cfg["convert"]["snapshot_root"]), "mnist",
                             cfg["datasets"]["mnist"]["keyspace"], cfg["train"]["snapshot"])
    url = child_url(manifest["path"], "train")
    tc = config.resolve(config.preset_overrides("mnist-fast") + args.set)["train"]
    torch.set_num_threads(1)

    batch_s, px, lb = batch_reader_img_s(url)
    log.info("loader, Petastorm make_batch_reader (vectorised decode): %.0f images/s (%d rows)", batch_s, len(px))
    row_s = row_reader_img_s(url, args.row_limit)
    log.info("loader, Petastorm make_reader (per row):                 %.0f images/s", row_s)
    mem_s = in_memory_img_s(px, lb, tc["batch_size"], tc)
    log.info("loader, in-memory tensors (index + normalise):            %.0f images/s", mem_s)

    gpus = torch.cuda.device_count()
    presets = args.preset or ["mnist-fast"]
    result, wall = train_run(presets + (["gpu"] if gpus else []), args.set, gpus)
    history = result["history"]
    train_s = max(h["images_per_s"] for h in history)
    s99, s995 = seconds_to(history, 0.99), seconds_to(history, 0.995)
    log.info("training step (%s, %s): %.0f images/s", "+".join(presets), f"{gpus} GPU" if gpus else "2 CPU ranks", train_s)
    log.info("test accuracy %.2f%% after %d epochs; 99.0%% after %s s of training (%.1f s wall with start-up and loading)",
             100 * result["test_accuracy"], result["epochs"], s99, wall)
    print(json.dumps({"loader_batch_img_s": round(batch_s), "loader_row_img_s": round(row_s), "in_memory_img_s": round(mem_s),
                      "train_img_s": round(train_s), "seconds_to_99": s99, "seconds_to_995": s995,
                      "final_accuracy": result["test_accuracy"], "train_wall_s": round(wall, 1),
                      "device": f"{gpus} x {torch.cuda.get_device_name(0)}" if gpus else f"cpu x {os.cpu_count()}",
                      "presets": presets}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
