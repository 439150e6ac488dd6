"""Training speed: the loader alone (Petastorm make_batch_reader vs per-row make_reader vs in-memory
tensors), the training step, seconds of training to 99.0% MNIST test accuracy, the rank loop beside a
plain single-process PyTorch loop, and the train job's fixed overhead.

    PYTHONPATH=lib .venv/bin/python bench/train.py [--set convert.snapshot_root=...] [--preset mnist-fast]
        [--compare-epochs 2] [--no-compare] [--no-overhead]

Reads the latest MNIST snapshot (run ingest + convert first). The training runs the real train_fn
under torchrun (no Spark): 2 CPU ranks, or one rank per GPU when CUDA is available.

Beside plain PyTorch (`net` and `fastcnn`): the same network, per-rank batch and epochs trained by
pytorch/examples' MNIST recipe (one process, all cores, Adadelta lr 1.0 + StepLR 0.7, fp32, the whole
normalised training set already a tensor in memory), then by digitforge's rank loop (torchrun, 2 ranks x
train.threads_per_rank), one after the other on the same cores: `plain_images_per_s`, `ratio_vs_plain`.
Each side's figure is its fastest epoch (the first pays the warm-up: oneDNN's kernels, DDP's first buckets).

overhead_s: one measured `scripts/submit.sh train` (1 epoch, no checkpoints, no report, registered in the bench's
keyspace bench_train_overhead): spark-submit -> first step
(the first epoch's log line less its elapsed training seconds) plus last step -> registry row (the last
epoch's line to the job's `model ...` line, which follows the registry write), each line
timed as it arrives.

Every figure is printed with the CPU model and the precision it ran in; the last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from digitforge.core import config
from digitforge.core.logs import setup_logging
from digitforge.core.storage import child_url
from digitforge.snapshot import shards
from digitforge.snapshot.manifest import load_manifest
from digitforge.training.data import to_input
from digitforge.training.models import MEAN, STD, build_model
from digitforge.training.precision import autocast_dtype, cpu_model

from measure import run_timed  # noqa: E402  (bench/measure.py)

ROOT = Path(__file__).resolve().parents[1]

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


def plain_pytorch_img_s(architecture: str, px: np.ndarray, lb: np.ndarray, batch_size: int, epochs: int,
                        width: int | None) -> float:
    """pytorch/examples mnist/main.py's loop for `architecture`: one process on all cores, Adadelta(lr=1.0),
    StepLR(gamma=0.7), fp32, shuffled batches of `batch_size` out of the normalised training set already in
    memory (what its DataLoader would hand over, minus the loading). Training images per second of its
    fastest epoch, as the rank loop's figure is."""
    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(1)
    x = ((torch.from_numpy(px).reshape(-1, 1, 28, 28).float() / 255.0) - MEAN) / STD
    y = torch.from_numpy(lb).long()
    model = build_model(architecture, width)
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    model.train()
    rate = 0.0
    for _ in range(epochs):
        t = time.perf_counter()
        for idx in torch.randperm(len(x)).split(batch_size):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
        scheduler.step()
        rate = max(rate, len(x) / (time.perf_counter() - t))
    torch.set_num_threads(1)
    return rate


def compare_with_plain(architecture: str, presets: list[str], overrides: list[str], px, lb, epochs: int,
                       plain_rows: int = 0, precision: str = "?") -> dict:
    """digitforge's rank loop (torchrun, 2 CPU ranks) against the plain loop, same network, batch and epochs,
    one after the other on the same cores."""
    sets = overrides + [f"train.architecture={architecture}", f"train.epochs={epochs}"]
    tc = config.resolve([o for p in presets for o in config.preset_overrides(p)] + sets)["train"]
    n = plain_rows or len(px)  # images/s does not depend on how many rows are in memory: a share is enough
    plain = plain_pytorch_img_s(architecture, px[:n], lb[:n], tc["batch_size"], epochs, tc["width"] or None)
    result, wall = train_run(presets, sets, 0)
    rank = max(h["images_per_s"] for h in result["history"])
    row = {"architecture": architecture, "batch_size": tc["batch_size"], "epochs": epochs,
           "threads_per_rank": tc["threads_per_rank"], "channels_last": tc["channels_last"],
           "rank_loop_images_per_s": round(rank), "plain_images_per_s": round(plain),
           "ratio_vs_plain": round(rank / plain, 2), "plain_rows": n,
           "rank_loop_precision": result.get("precision", precision), "plain_precision": "float32"}
    log.info("%-8s rank loop (2 ranks x %d thread, batch %d, %s): %.0f images/s; plain PyTorch (1 process, %d threads, "
             "float32): %.0f images/s; ratio %.2f  [%s]", architecture, tc["threads_per_rank"], tc["batch_size"],
             row["rank_loop_precision"], rank, os.cpu_count(), plain, rank / plain, cpu_model())
    return row


def train_job_overhead(cfg: dict, overrides: list[str], keyspace: str = "bench_train_overhead") -> dict:
    """One measured `scripts/submit.sh train --preset mnist-fast` of 1 epoch: seconds from spark-submit to the
    first step and from the last step to the registry row, each log line timed on arrival. The model is
    registered in a keyspace of the bench's own (never the dataset's registry), which holds its own copy of MNIST
    (snapshots are filed per keyspace: ingested and converted once, the first time); no report, no checkpoints."""
    submit = str(ROOT / "scripts" / "submit.sh")
    sets = [a for o in overrides for a in ("--set", o)]
    try:
        load_manifest(config.project_location(cfg["convert"]["snapshot_root"]), "mnist", keyspace)
    except FileNotFoundError:
        log.info("train job overhead: MNIST into keyspace %s first (ingest + convert, once)", keyspace)
        for job in ("ingest", "convert"):
            subprocess.run([submit, job, "--dataset", "mnist", "--keyspace", keyspace, *sets], cwd=ROOT, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cmd = [submit, "train", "--dataset", "mnist", "--keyspace", keyspace, "--preset", "mnist-fast",
           "--set", "train.epochs=1", "--set", "train.checkpoint_dir=", "--set", "train.comments=bench overhead",
           "--set", "report.enabled=false", *sets]
    run = run_timed(cmd, cwd=ROOT)
    if run.rc != 0:
        sys.stderr.write(run.tail() + "\n")
        raise SystemExit(f"train job exited {run.rc}")
    arrivals = run.lines
    epochs = [(t, line) for t, line in arrivals if "digitforge.train: epoch " in line]
    done = next(t for t, line in arrivals if "digitforge.jobs.train: model " in line)
    first_t, first_line = epochs[0]
    elapsed = float(first_line.rsplit("images/s", 1)[1].split("s elapsed")[0])
    # the first epoch's line comes after its test pass too: elapsed_s counts training from the first step,
    # so first step = line time - elapsed - (test pass, small, left in the overhead: an upper bound)
    to_first_step = first_t - elapsed
    after_last = done - epochs[-1][0]
    wall = run.wall_s
    figures = {"overhead_s": round(to_first_step + after_last, 1), "submit_to_first_step_s": round(to_first_step, 1),
               "last_step_to_registry_s": round(after_last, 1), "train_job_wall_s": round(wall, 1)}
    log.info("train job overhead: %.1fs (spark-submit -> first step %.1fs, last step -> registry row %.1fs; "
             "%.1fs wall for 1 epoch)  [%s]", figures["overhead_s"], to_first_step, after_last, wall, cpu_model())
    return figures


def seconds_to(history: list[dict], target: float) -> float | None:
    return next((h["elapsed_s"] for h in history if h["test_accuracy"] >= target), None)


def main() -> int:
    setup_logging()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config overrides (also for training)")
    p.add_argument("--preset", action="append", default=None, help="training preset(s) (default: mnist-fast)")
    p.add_argument("--row-limit", type=int, default=0, help="rows read with the per-row make_reader (0: all)")
    p.add_argument("--compare-epochs", type=int, default=2,
                   help="epochs of each run beside plain PyTorch (each side's fastest counts)")
    p.add_argument("--plain-rows", type=int, default=0, help="rows the plain loop trains on each epoch (0: all)")
    p.add_argument("--no-compare", action="store_true", help="skip the runs beside plain PyTorch")
    p.add_argument("--no-overhead", action="store_true", help="skip the measured train job (overhead_s)")
    p.add_argument("--no-to-99", action="store_true", help="skip the preset's run to 99%% (seconds_to_99)")
    args = p.parse_args()
    cfg = config.resolve(args.set)
    manifest = load_manifest(config.project_location(cfg["convert"]["snapshot_root"]), "mnist",
                             cfg["datasets"]["mnist"]["keyspace"], cfg["train"]["snapshot"])
    url = child_url(manifest["path"], "train")
    presets = args.preset or ["mnist-fast"]
    tc = config.resolve([o for p in presets for o in config.preset_overrides(p)] + args.set)["train"]
    gpus = torch.cuda.device_count()
    device = torch.device("cuda", 0) if gpus else torch.device("cpu")
    amp = autocast_dtype(tc, device)
    precision = str(amp).replace("torch.", "") if amp else "float32"
    machine = f"{gpus} x {torch.cuda.get_device_name(0)}" if gpus else f"{cpu_model()} x {os.cpu_count()} CPUs"
    tag = f"[{machine}; {precision} ({tc['precision']}); load {os.getloadavg()[0]:.2f}]"
    torch.set_num_threads(1)

    batch_s, px, lb = batch_reader_img_s(url)
    log.info("loader, Petastorm make_batch_reader (vectorised decode): %.0f images/s (%d rows)  %s", batch_s, len(px), tag)
    row_s = row_reader_img_s(url, args.row_limit)
    log.info("loader, Petastorm make_reader (per row):                 %.0f images/s  %s", row_s, tag)
    mem_s = in_memory_img_s(px, lb, tc["batch_size"], tc)
    log.info("loader, in-memory tensors (index + normalise):            %.0f images/s  %s", mem_s, tag)
    figures = {"loader_batch_img_s": round(batch_s), "loader_row_img_s": round(row_s), "in_memory_img_s": round(mem_s)}

    if not args.no_to_99:
        result, wall = train_run(presets + (["gpu"] if gpus else []), args.set, gpus)
        history = result["history"]
        train_s = max(h["images_per_s"] for h in history)
        s99, s995 = seconds_to(history, 0.99), seconds_to(history, 0.995)
        precision = result.get("precision", precision)
        tag = f"[{machine}; {precision} ({tc['precision']}); load {os.getloadavg()[0]:.2f}]"
        log.info("training step (%s, %s): %.0f images/s  %s", "+".join(presets), f"{gpus} GPU" if gpus else "2 CPU ranks",
                 train_s, tag)
        log.info("test accuracy %.2f%% after %d epochs; 99.0%% after %s s of training (%.1f s wall with start-up and "
                 "loading)  %s", 100 * result["test_accuracy"], result["epochs"], s99, wall, tag)
        figures.update(train_img_s=round(train_s), seconds_to_99=s99, seconds_to_995=s995,
                       final_accuracy=result["test_accuracy"], train_wall_s=round(wall, 1))
    if not args.no_compare and not gpus:
        # net: the defaults (the original demo's training); fastcnn: the speed preset
        figures["vs_plain"] = [compare_with_plain("net", [], args.set, px, lb, args.compare_epochs, args.plain_rows),
                               compare_with_plain("fastcnn", ["mnist-fast"], args.set, px, lb, args.compare_epochs,
                                                  args.plain_rows)]
    if not args.no_overhead:
        figures.update(train_job_overhead(cfg, args.set))
    print(json.dumps(dict(figures, precision=precision, precision_setting=tc["precision"], device=machine,
                          cpu_model=cpu_model(), cpus=os.cpu_count(), load_avg_1m=round(os.getloadavg()[0], 2),
                          presets=presets)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
