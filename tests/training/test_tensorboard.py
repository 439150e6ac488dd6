"""TensorBoard event files of a run, read back with TensorBoard's own reader (EventAccumulator), and
the command `digitforge runs tensorboard` prints. The train job's events: tests/training/test_training.py."""
import json
import shlex
import subprocess

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import BIN
from digitforge.training import tensorboard


def history_row(epoch: int) -> dict:
    return {"epoch": epoch, "train_loss": 1.0 / epoch, "test_loss": 2.0 / epoch, "test_accuracy": 0.5 + 0.1 * epoch,
            "lr": 0.1 * 0.7 ** epoch, "images_per_s": 1000.0 * epoch, "elapsed_s": 3.0 * epoch}


def read_events(folder) -> EventAccumulator:
    events = EventAccumulator(str(folder))
    events.Reload()
    return events


def scalars(events: EventAccumulator, tag: str) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in events.Scalars(tag)]


def test_one_point_per_epoch_for_each_curve(tmp_path):
    log = tensorboard.EpochLog(tmp_path, 1, {"train": {"lr": 0.1}})
    for epoch in (1, 2, 3):
        log.epoch(history_row(epoch))
    log.close()
    events = read_events(tmp_path)
    assert set(events.Tags()["scalars"]) == set(tensorboard.SCALARS)
    for tag, key in tensorboard.SCALARS.items():
        assert scalars(events, tag) == [(e, pytest.approx(history_row(e)[key])) for e in (1, 2, 3)]
    assert "config/text_summary" in events.Tags()["tensors"]


def test_a_resumed_run_shows_each_epoch_once(tmp_path):
    first = tensorboard.EpochLog(tmp_path, 1, {})
    for epoch in (1, 2, 3):  # killed after logging epoch 3, before its checkpoint: resumes at 3
        first.epoch(history_row(epoch))
    first.close()
    resumed = tensorboard.EpochLog(tmp_path, 3, {})
    for epoch in (3, 4):
        resumed.epoch(dict(history_row(epoch), test_loss=9.0 + epoch))
    resumed.close()
    assert scalars(read_events(tmp_path), "loss/test") == [(1, 2.0), (2, 1.0), (3, 12.0), (4, 13.0)]


def test_runs_tensorboard_prints_the_command_for_the_checkpoint_folder(tmp_path):
    (tmp_path / "mnist-net-1").mkdir()
    def cli(*args, check=True):
        return subprocess.run([str(BIN / "digitforge"), "--set", f"train.checkpoint_dir={tmp_path}", "runs",
                               "tensorboard", *args], capture_output=True, text=True, check=check)
    cmd = shlex.split(cli().stdout.strip())
    assert cmd[0].endswith("tensorboard") and cmd[1:] == ["--logdir", str(tmp_path), "--host", "127.0.0.1",
                                                          "--port", "6006"]
    assert shlex.split(cli("mnist-net-1", "--port", "6007").stdout)[1:] == [
        "--logdir", str(tmp_path / "mnist-net-1"), "--host", "127.0.0.1", "--port", "6007"]
    missing = cli("nosuch", check=False)
    assert missing.returncode == 2 and "no run 'nosuch'" in missing.stderr
