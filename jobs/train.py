"""spark-submit job: train on a snapshot with TorchDistributor (DDP), evaluate, register the model.

    scripts/submit.sh train --dataset mnist [--architecture net] [--epochs 6] [--set train.lr=0.01]
    scripts/submit.sh train --dataset mnist --preset mnist-best        # conf/presets/mnist-best.yaml
    scripts/submit.sh train --resume [RUN_ID] [--epochs N]             # continue from the last checkpoint
      [--keyspace KS]    the keyspace that holds the dataset's raw tables and registry

The keyspace is checked before any work (one that needs `digitforge schema apply` exits 2). A dataset's
first model becomes its champion, so `scripts/submit.sh predict` works straight after.

A lost rank restarts the run from its last checkpoint (train.max_restarts). A finished run is recorded
beside its checkpoints before it is registered: if registration still fails after its retries, the job
exits 3 naming the run, and `digitforge registry register RUN_ID` registers it later.
Exit codes: 0 registered, 2 bad input, 3 training failed past its restarts or registration failed.
"""
import json
import logging
import sys

from digitforge.core import failures
from digitforge.core.config import dataset_info
from digitforge.core.logs import setup_logging
from digitforge.core.spark import get_spark
from digitforge.core.tables import require_current
from digitforge.registry import write as registry_write
from digitforge.registry.aliases import champion_if_none
from digitforge.registry.lineage import code_version, lineage
from digitforge.report import data as report_data
from digitforge.training import checkpoints, prepare
from digitforge.training.launch import TrainingFailed, run_distributed

log = logging.getLogger("digitforge.jobs.train")


def main(argv=None) -> int:
    setup_logging()
    args = prepare.parser(__doc__).parse_args(argv)
    try:
        cfg, manifest = prepare.prepare_run(args)
        keyspace = dataset_info(cfg, cfg["train"]["dataset"])["keyspace"]
        require_current(cfg, keyspace)  # the registry it will write to, checked before training
    except (LookupError, ValueError, FileNotFoundError) as e:  # bad flag or preset, no snapshot or run, few row
        # groups, a keyspace that needs `digitforge schema apply`
        log.error("%s", e)
        return 2
    tc = cfg["train"]
    log.info("training %s on %s snapshot %s (%s) with %d ranks (%s)%s", tc["architecture"], tc["dataset"],
             manifest["version"], json.dumps(manifest["rows"]), tc["num_processes"],
             "local mode" if tc["local_mode"] else "one per executor",
             f", resuming run {tc['run_id']}" if tc["resume"] else "")

    spark = get_spark(f"digitforge-train-{tc['dataset']}", cfg)
    try:
        result = run_distributed(cfg, manifest)
    except TrainingFailed as e:
        log.error("%s", e)
        return 3
    finally:
        spark.stop()

    tc["run_id"] = result["run_id"] or ""
    trained_on = lineage(manifest, code_version=code_version(), run_id=tc["run_id"])
    run_dir = checkpoints.run_folder(tc["checkpoint_dir"], tc["run_id"]) if tc["run_id"] else None
    if run_dir:  # what `digitforge registry register RUN_ID` needs, should registration fail now
        checkpoints.save_result(run_dir, result, trained_on, tc["comments"])
    try:
        model_id = registry_write.register(cfg, tc["dataset"], result, cfg, trained_on, tc["comments"])
    except registry_write.RegistrationFailed as e:
        log.error("%s", e)
        return 3
    if run_dir:
        checkpoints.mark_registered(run_dir, model_id)
    report_data.trained_model_report(cfg, tc["dataset"], model_id, result, trained_on, manifest)  # logs its path
    champion = champion_if_none(cfg, tc["dataset"], model_id)
    summary = dict(prepare.summary(cfg, result), id=str(model_id), keyspace=keyspace, champion=champion)
    log.info("model %s: test accuracy %.2f%%, test loss %.4f, %d epochs in %.0fs (run %s)", model_id,
             100 * result["test_accuracy"], result["test_loss"], result["epochs"], result["train_seconds"], tc["run_id"])
    if champion:
        log.info("model %s is the champion of %s in %s (first model of the dataset)", model_id, tc["dataset"], keyspace)
    log.info("predict with it: scripts/submit.sh predict --dataset %s --keyspace %s --model %s", tc["dataset"],
             keyspace, "champion" if champion else model_id)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(failures.run(main))  # a lost or refusing cluster: one line, exit 2/3
