"""TensorBoard event files of a training run, written by rank 0 with torch's SummaryWriter into the
run's checkpoint folder (<checkpoint_dir>/<run_id>/events.out.tfevents.*), one point per epoch:

    loss/train, loss/test, accuracy/test, learning_rate, images_per_s

`tensorboard --logdir <checkpoint_dir>` shows every run by its run id (`digitforge runs tensorboard`
prints that command). A resumed run purges points from its epoch on, so an epoch a killed run had
logged but not checkpointed appears once. Events go to local checkpoint folders only (torch's writer
writes local files): a run whose checkpoint dir is a URL keeps its checkpoints there and writes no events.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

# tag -> key of a history row (training/loop.py)
SCALARS = {"loss/train": "train_loss", "loss/test": "test_loss", "accuracy/test": "test_accuracy",
           "learning_rate": "lr", "images_per_s": "images_per_s"}


class EpochLog:
    """One run's event file; `first_epoch` > 1 when the run resumes."""

    def __init__(self, run_dir: str | Path, first_epoch: int, config: dict):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(run_dir), purge_step=first_epoch if first_epoch > 1 else None)
        if first_epoch == 1:
            self.writer.add_text("config", "```json\n" + json.dumps(config, indent=1, default=str) + "\n```", 0)

    def epoch(self, row: dict) -> None:
        for tag, key in SCALARS.items():
            self.writer.add_scalar(tag, float(row[key]), row["epoch"])
        self.writer.flush()  # on disk every epoch: a killed run keeps what it logged

    def close(self) -> None:
        self.writer.close()


def writes_to(run_dir) -> bool:
    """True when a run folder takes event files: a local one (a URL's run writes none)."""
    from digitforge.core.storage import is_url

    return bool(run_dir) and not is_url(run_dir)


def command(checkpoint_dir: str | Path, run_id: str | None = None, port: int = 6006) -> list[str]:
    """The command that shows the runs under checkpoint_dir (or one run) in TensorBoard on 127.0.0.1."""
    if not writes_to(checkpoint_dir):
        raise ValueError(f"train.checkpoint_dir {checkpoint_dir} is a URL: runs there write no TensorBoard events")
    logdir = Path(checkpoint_dir) / run_id if run_id else Path(checkpoint_dir)
    if run_id and not logdir.is_dir():
        raise FileNotFoundError(f"no run {run_id!r} under {checkpoint_dir} (train.checkpoint_dir)")
    venv_binary = Path(sys.executable).with_name("tensorboard")
    binary = str(venv_binary) if venv_binary.exists() else (shutil.which("tensorboard") or "tensorboard")
    return [binary, "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port)]
