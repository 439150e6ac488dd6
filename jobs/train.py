"""spark-submit job: train on a snapshot with TorchDistributor (DDP), evaluate, register the model.

    scripts/submit.sh train --dataset mnist [--architecture net] [--epochs 6] [--set train.lr=0.01]
"""
import json
import logging
import subprocess
import sys

from digitforge import __version__, config, registry, report_data, snapshot
from digitforge.logs import setup_logging
from digitforge.spark import get_spark
from digitforge.train import run_distributed

log = logging.getLogger("digitforge.jobs.train")


def code_version() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=config.PROJECT_ROOT, timeout=5).stdout.strip()
    except OSError:
        sha = ""
    return f"{__version__}+{sha}" if sha else __version__


def main(argv=None) -> int:
    setup_logging()
    p = config.job_parser(__doc__)
    p.add_argument("--architecture")
    p.add_argument("--epochs", type=int)
    p.add_argument("--snapshot", help="snapshot version (default: latest)")
    p.add_argument("--comments")
    args = p.parse_args(argv)
    cfg = config.resolve(args.set, **{"train.dataset": args.dataset, "train.architecture": args.architecture,
                                      "train.epochs": args.epochs, "train.snapshot": args.snapshot,
                                      "train.comments": args.comments})
    tc = cfg["train"]
    manifest = snapshot.resolve(config.project_path(cfg["convert"]["snapshot_root"]), tc["dataset"], tc["snapshot"])
    log.info("training %s on %s snapshot %s (%s) with %d ranks", tc["architecture"], tc["dataset"],
             manifest["version"], json.dumps(manifest["rows"]), tc["num_processes"])

    spark = get_spark(f"digitforge-train-{tc['dataset']}", cfg)
    result = run_distributed(cfg, manifest)
    spark.stop()

    lineage = {"snapshot": manifest["path"], "snapshot_version": manifest["version"], "rows": manifest["rows"],
               "source": manifest["source"], "code_version": code_version()}
    model_id = registry.register(cfg, tc["dataset"], result, cfg, lineage, tc["comments"])
    report_data.trained_model_report(cfg, tc["dataset"], model_id, result, lineage, manifest)  # logs its path
    summary = {"id": str(model_id), "dataset": tc["dataset"], "architecture": tc["architecture"],
               "test_accuracy": result["test_accuracy"], "test_loss": result["test_loss"],
               "train_seconds": result["train_seconds"]}
    log.info("model %s: test accuracy %.2f%%, test loss %.4f", model_id, 100 * result["test_accuracy"], result["test_loss"])
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
