"""How each stage's time and memory grow with the rows: a synthetic MNIST-shaped set at 70,000 and 700,000
rows (2,000,000 with --large) through the real jobs: ingest -> convert -> train 1 epoch streamed (2 ranks)
-> predict over the whole test table.

    PYTHONPATH=lib .venv/bin/python bench/scale.py [--sizes 70000,700000] [--large] [--plot var/bench-scale/scale.png]

The set: the real MNIST images, each synthetic row a seeded random shift (up to 2 px) and rotation (up to
10 degrees) of a real image, its label kept; 6/7 of the rows from the training split, 1/7 from the test split
(MNIST's 60k/10k), written as uncompressed IDX files in chunks (bounded memory) under --work. The same seed
gives the same bytes.

Each size gets a keyspace of its own (bench_scale_<rows>, dropped and re-created; left for inspection) and
its own snapshot, report and registry: the `mnist` dataset is pointed at it with --set flags, as the tests do.
Per stage: seconds end to end (spark-submit to exit, what a user waits for), rows/s on them, the job's own
work seconds where it reports them (ingest's write stage, train's training seconds), and the peak RSS of the
driver side and of the largest other process (executor, Python worker, rank), sampled with psutil over the
job's process tree. Last line: one JSON object with, per size, ingest_rows_per_s, convert_rows_per_s,
train_images_per_s, predict_rows_per_s, peak_rss_mb, and `linearity` per stage = rows/s at the largest size
over rows/s at the smallest (end to end; `linearity_work` on the jobs' own work seconds where they exist).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import struct
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))  # this checkout's digitforge
from digitforge.core import config  # noqa: E402
from digitforge.core.connection import session  # noqa: E402
from digitforge.core.logs import setup_logging  # noqa: E402
from digitforge.ingest import idx  # noqa: E402
from digitforge.ingest.data_files import dataset_folder  # noqa: E402
from digitforge.training.augment import random_affine  # noqa: E402
from digitforge.training.precision import cpu_model  # noqa: E402
from measure import run_timed  # noqa: E402  (bench/measure.py)

log = logging.getLogger("digitforge.bench.scale")
ROOT = Path(__file__).resolve().parents[1]
SUBMIT = str(ROOT / "scripts" / "submit.sh")
STAGES = ("ingest", "convert", "train", "predict")
CHUNK = 10_000  # rows generated and written at a time


def split_sizes(rows: int) -> tuple[int, int]:
    """(train, test) rows: MNIST's 6:1."""
    test = rows // 7
    return rows - test, test


def synthetic_chunks(images: np.ndarray, labels: np.ndarray, n: int, seed: int):
    """n rows of (uint8 images (k, 28, 28), labels (k,)) in chunks: row j is a random shift/rotation of
    images[j % len(images)] with its label. Deterministic in (seed, chunk), whatever the thread count."""
    for start in range(0, n, CHUNK):
        src = np.arange(start, min(start + CHUNK, n)) % len(images)
        torch.manual_seed(seed * 1_000_003 + start)
        x = torch.from_numpy(images[src]).unsqueeze(1).float()
        out = random_affine(x, shift=2, rotate=10).round_().clamp_(0, 255).to(torch.uint8)
        yield out.squeeze(1).numpy(), labels[src]


def write_idx(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray, n: int, seed: int) -> None:
    """<prefix>-images-idx3-ubyte and <prefix>-labels-idx1-ubyte with n synthetic rows, written chunk by chunk."""
    with open(folder / f"{prefix}-images-idx3-ubyte", "wb") as fi, open(folder / f"{prefix}-labels-idx1-ubyte", "wb") as fl:
        fi.write(struct.pack(">iiii", 2051, n, 28, 28))
        fl.write(struct.pack(">ii", 2049, n))
        for px, lb in synthetic_chunks(images, labels, n, seed):
            fi.write(np.ascontiguousarray(px).tobytes())
            fl.write(np.ascontiguousarray(lb, dtype=np.uint8).tobytes())


def make_dataset(folder: Path, rows: int, seed: int) -> Path:
    """The synthetic set of `rows` rows under folder/<rows>/ (reused when complete)."""
    out = folder / str(rows)
    done = out / "done"
    if done.exists() and done.read_text() == str(seed):
        return out
    out.mkdir(parents=True, exist_ok=True)
    real = dataset_folder("mnist", "mnist")
    n_train, n_test = split_sizes(rows)
    for prefix, split, n in (("train", "train", n_train), ("t10k", "test", n_test)):
        images, labels = idx.read_pair(*idx.find_split_files(real, split))
        write_idx(out, prefix, images, labels, n, seed + (split == "test"))
    done.write_text(str(seed))
    return out


def job(name: str, flags: list[str], env: dict) -> tuple[dict, dict]:
    """One real job under spark-submit: its JSON summary and the measurements."""
    run = run_timed([SUBMIT, name, *flags], cwd=ROOT, env=env, rss=True)
    if run.rc != 0:
        sys.stderr.write(run.tail(60) + "\n")
        raise SystemExit(f"{name} exited {run.rc}")
    summary = json.loads([ln for ln in run.stdout.splitlines() if ln.startswith("{")][-1])
    return summary, {"seconds": round(run.wall_s, 2), "peak_rss_mb": run.peak_rss_mb}


def one_size(rows: int, data: Path, work: Path, cfg: dict, extra: list[str]) -> dict:
    ks = f"bench_scale_{rows}"
    n_train, n_test = split_sizes(rows)
    with session(cfg) as s:
        s.execute(f"DROP KEYSPACE IF EXISTS {ks}")
    sets = [f"datasets.mnist.keyspace={ks}", f"convert.snapshot_root={work / ks / 'snapshots'}",
            f"report.root={work / ks / 'reports'}", "train.checkpoint_dir=", *extra]
    flags = ["--dataset", "mnist", *[a for s_ in sets for a in ("--set", s_)]]
    env = dict(os.environ)
    out = {"rows": rows, "train_rows": n_train, "test_rows": n_test}

    summary, m = job("ingest", [*flags, "--data-dir", str(data)], env)
    m.update(rows=rows, rows_per_s=round(rows / m["seconds"]), work_s=summary["write_seconds"],
             work_rows_per_s=summary["rows_per_s"])
    out["ingest"] = m
    summary, m = job("convert", flags, env)
    m.update(rows=rows, rows_per_s=round(rows / m["seconds"]))
    out["convert"] = m
    summary, m = job("train", [*flags, "--epochs", "1", "--set", "train.data=stream", "--set", "train.num_processes=2"], env)
    m.update(rows=n_train, rows_per_s=round(n_train / m["seconds"]), work_s=summary["train_seconds"],
             work_rows_per_s=round(n_train / summary["train_seconds"]), test_accuracy=summary["test_accuracy"])
    out["train"], model_id = m, summary["id"]
    summary, m = job("predict", [*flags, "--model", model_id, "--table", "raw_test", "--keyspace", ks], env)
    if summary["rows_read"] != n_test:
        raise RuntimeError(f"predict read {summary['rows_read']} rows of {ks}.raw_test, expected {n_test}")
    m.update(rows=n_test, rows_per_s=round(n_test / m["seconds"]), labelled_accuracy=summary["labelled_accuracy"])
    out["predict"] = m
    for stage in STAGES:
        s_ = out[stage]
        log.info("%8d rows  %-8s %8.1fs  %8d rows/s%s  peak RSS driver %d MiB, other %d MiB  [%s; load %.2f]", rows,
                 stage, s_["seconds"], s_["rows_per_s"],
                 f" (work {s_['work_s']}s: {s_['work_rows_per_s']} rows/s)" if "work_s" in s_ else "",
                 s_["peak_rss_mb"]["driver"], s_["peak_rss_mb"]["other"], cpu_model(), os.getloadavg()[0])
    return out


def linearity(results: list[dict], key: str) -> dict:
    """Per stage: rows/s (`key`) at the largest size over rows/s at the smallest (None with one size)."""
    small, large = results[0], results[-1]
    if small is large:
        return {stage: None for stage in STAGES}
    return {stage: round(large[stage][key] / small[stage][key], 2) if key in large[stage] else None for stage in STAGES}


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    sizes = [r["rows"] for r in results]
    for stage in STAGES:
        ax.plot(sizes, [r[stage]["seconds"] for r in results], marker="o", label=stage)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("rows in the set (train + test)")
    ax.set_ylabel("seconds, spark-submit to exit")
    ax.set_title(f"digitforge stages vs rows ({cpu_model()}, {os.cpu_count()} CPUs)", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    log.info("plot: %s", path)


def main(argv=None) -> int:
    setup_logging()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="70000,700000", help="comma-separated row counts")
    p.add_argument("--large", action="store_true", help="also 2,000,000 rows (about 1.6 GB of IDX, needs disk and time)")
    p.add_argument("--seed", type=int, default=16)
    p.add_argument("--work", default="var/bench-scale", help="synthetic IDX files, snapshots, reports")
    p.add_argument("--plot", default="", help="the log-log PNG (default: <work>/scale.png)")
    p.add_argument("--generate-only", action="store_true", help="write the synthetic sets and stop")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config overrides for every job")
    args = p.parse_args(argv)
    sizes = sorted({int(s) for s in args.sizes.split(",")} | ({2_000_000} if args.large else set()))
    work = (ROOT / args.work).resolve()
    cfg = config.resolve(args.set)
    torch.set_num_threads(1)

    results = []
    for rows in sizes:
        data = make_dataset(work / "data", rows, args.seed)
        log.info("synthetic set of %d rows: %s", rows, data)
        if not args.generate_only:
            results.append(one_size(rows, data, work, cfg, args.set))
    if args.generate_only:
        return 0
    plot(results, Path(args.plot) if args.plot else work / "scale.png")
    final = {
        "sizes": {str(r["rows"]): {"ingest_rows_per_s": r["ingest"]["rows_per_s"],
                                   "convert_rows_per_s": r["convert"]["rows_per_s"],
                                   "train_images_per_s": r["train"]["work_rows_per_s"],
                                   "predict_rows_per_s": r["predict"]["rows_per_s"],
                                   "peak_rss_mb": {st: r[st]["peak_rss_mb"] for st in STAGES},
                                   "seconds": {st: r[st]["seconds"] for st in STAGES},
                                   "ingest_write_rows_per_s": r["ingest"]["work_rows_per_s"],
                                   "train_images_per_s_end_to_end": r["train"]["rows_per_s"],
                                   "test_accuracy": r["train"]["test_accuracy"]} for r in results},
        "linearity": linearity(results, "rows_per_s"), "linearity_work": linearity(results, "work_rows_per_s"),
        "cpu_model": cpu_model(), "cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(final))
    return 0


if __name__ == "__main__":
    sys.exit(main())
