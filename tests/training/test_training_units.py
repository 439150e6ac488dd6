"""Pure training pieces: augmentation, checkpoints, resume checks, presets, models, row-group check,
the GPU discovery script."""
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from digitforge.core import config
from digitforge.registry import artifacts
from digitforge.snapshot import shards
from digitforge.training import checkpoints
from digitforge.training import prepare
from digitforge.training.augment import random_affine
from digitforge.training.data import epoch_seed
from digitforge.training.models import build_model
from digitforge.training.optim import make_schedule

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_whole_pixel_shifts_move_the_image_without_blurring_it():
    x = torch.zeros(64, 1, 28, 28)
    x[:, :, 10:18, 12:16] = 1.0
    out = random_affine(x, shift=2)
    assert out.shape == x.shape
    assert torch.all((out == 0) | (out == 1))  # moved, not interpolated
    assert torch.all(out.sum((1, 2, 3)) == 32)  # nothing pushed off the 28x28 canvas
    moved = [(torch.nonzero(o[0])[:, 0].min().item() - 10, torch.nonzero(o[0])[:, 1].min().item() - 12) for o in out]
    assert {d for d, _ in moved} <= {-2, -1, 0, 1, 2} and len(set(moved)) > 5


def test_flip_mirrors_about_half_the_batch_and_rotation_keeps_the_shape():
    x = torch.zeros(400, 1, 28, 28)
    x[:, :, :, :5] = 1.0
    mirrored = random_affine(x, flip=True)[:, 0, :, -5:].sum((1, 2)) > 0
    assert 120 < int(mirrored.sum()) < 280
    assert random_affine(x, shift=1.5, rotate=10, scale=0.1).shape == x.shape
    assert random_affine(x) is x  # nothing asked: no copy


def test_random_erase_blanks_one_rectangle_in_the_chosen_share_of_images():
    from digitforge.training.augment import random_erase

    x = torch.ones(1000, 1, 28, 28)
    out = random_erase(x, p=0.5)
    blanked = (out == 0).sum((1, 2, 3))
    assert 400 < int((blanked > 0).sum()) < 600
    assert int(blanked.max()) <= 0.25 * 784 + 28
    assert random_erase(x, 0.0) is x


def test_fastcnn_width_scales_the_network_and_only_applies_to_fastcnn():
    small, wide = build_model("fastcnn", 8), build_model("fastcnn", 32)
    assert sum(p.numel() for p in wide.parameters()) > 10 * sum(p.numel() for p in small.parameters())
    assert wide(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ValueError, match="applies to fastcnn only"):
        build_model("lenet5", 32)


def test_mlp_and_lenet5_follow_the_tutorial_shapes():
    mlp = [m for m in build_model("mlp").modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in mlp] == [(784, 128), (128, 64), (64, 10)]
    lenet = build_model("lenet5")
    convs = [m for m in lenet.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size) for c in convs] == [(20, (5, 5)), (50, (5, 5))]
    assert any(isinstance(m, torch.nn.Linear) and m.out_features == 500 for m in lenet.modules())


def test_presets_resolve_and_flags_override_them():
    overrides = config.preset_overrides("mnist-best") + ["train.epochs=3"]
    tc = config.resolve(overrides)["train"]
    assert tc["architecture"] == "fastcnn" and tc["schedule"] == "onecycle" and tc["epochs"] == 3
    for name in ("mnist-fast", "fashion-best", "gpu"):
        config.resolve(config.preset_overrides(name))  # every key of every preset exists
    with pytest.raises(config.ConfigError, match="unknown preset 'nope'.*mnist-best"):
        config.preset_overrides("nope")


def test_schedules():
    model = build_model("mlp")
    tc = config.resolve(["train.schedule=onecycle", "train.epochs=2", "train.lr=0.1", "train.optimizer=sgd"])["train"]
    from digitforge.training.optim import make_optimizer
    opt = make_optimizer(model, tc)
    sched, per_batch = make_schedule(opt, tc, steps_per_epoch=10)
    assert per_batch and sched.total_steps == 20
    json.dumps(sched.state_dict())  # the checkpoint stores it as JSON


def test_epoch_seeds_differ_by_rank_and_epoch_and_repeat():
    seeds = {epoch_seed(1, r, e) for r in range(2) for e in range(1, 4)}
    assert len(seeds) == 6 and epoch_seed(1, 1, 3) == epoch_seed(1, 1, 3)


def _cfg(**train):
    cfg = config.resolve()
    cfg["train"].update(train)
    return cfg


def test_checkpoints_keep_the_last_epochs_and_load_the_newest(tmp_path):
    model = build_model("mlp")
    weights = artifacts.weights_to_bytes(model.state_dict())
    opt = artifacts.optimizer_to_bytes(torch.optim.SGD(model.parameters(), lr=0.1).state_dict())
    run = Path(checkpoints.start_run(tmp_path, "r1", _cfg(architecture="mlp")))
    assert checkpoints.last_epoch(run) is None
    for epoch in (1, 2, 3):
        checkpoints.save(run, epoch, weights, opt, {"history": [{"epoch": e} for e in range(1, epoch + 1)]})
    assert sorted(p.name for p in run.glob("epoch-*")) == ["epoch-0002", "epoch-0003"]
    ckpt = checkpoints.load(run)
    assert ckpt["state"]["epoch"] == 3 and len(ckpt["state"]["history"]) == 3
    assert not ckpt["weights"].startswith(b"\x80")  # safetensors, not a pickle
    # a half-written epoch (killed while saving) is ignored: `latest` still names epoch 3
    (run / "epoch-0004.tmp").mkdir()
    assert checkpoints.last_epoch(run) == 3


def test_find_run_picks_the_newest_run_of_the_dataset_and_architecture(tmp_path):
    for run_id, arch in (("a", "mlp"), ("b", "mlp"), ("c", "net")):
        run = checkpoints.start_run(tmp_path, run_id, _cfg(architecture=arch))
        checkpoints.save(run, 1, b"w", b"o", {"history": []})
    checkpoints.start_run(tmp_path, "d", _cfg(architecture="mlp"))  # no epoch yet: not resumable
    assert Path(checkpoints.find_run(tmp_path, "mnist", "mlp")).name == "b"
    assert Path(checkpoints.find_run(tmp_path, "mnist", "net", "latest")).name == "c"
    assert Path(checkpoints.find_run(tmp_path, "mnist", "net", "a")).name == "a"
    with pytest.raises(checkpoints.CheckpointError, match="no run 'zz'"):
        checkpoints.find_run(tmp_path, "mnist", "mlp", "zz")
    with pytest.raises(checkpoints.CheckpointError, match="'d'.*no complete epoch"):
        checkpoints.find_run(tmp_path, "mnist", "mlp", "d")
    with pytest.raises(checkpoints.CheckpointError, match="no run of lenet5 on mnist"):
        checkpoints.find_run(tmp_path, "mnist", "lenet5")


def test_find_run_latest_stays_in_the_runs_keyspace(tmp_path):
    for run_id, ks in (("old", "mnist_digits"), ("new", "other_digits")):
        cfg = config.use_keyspace(_cfg(architecture="net"), "mnist", ks)
        checkpoints.save(checkpoints.start_run(tmp_path, run_id, cfg), 1, b"w", b"o", {"history": []})
    assert Path(checkpoints.find_run(tmp_path, "mnist", "net", keyspace="mnist_digits")).name == "old"
    assert Path(checkpoints.find_run(tmp_path, "mnist", "net", keyspace="other_digits")).name == "new"
    with pytest.raises(checkpoints.CheckpointError, match="in keyspace third_digits"):
        checkpoints.find_run(tmp_path, "mnist", "net", keyspace="third_digits")


def test_resume_checks_name_what_cannot_change():
    before = _cfg(schedule="onecycle", epochs=4)["train"]
    prepare.check_resumable(before, dict(before), 2, "r")
    with pytest.raises(config.ConfigError, match=r"train.epochs \(4 -> 6\)"):
        prepare.check_resumable(before, dict(before, epochs=6), 2, "r")
    with pytest.raises(config.ConfigError, match=r"train.architecture \('net' -> 'mlp'\)"):
        prepare.check_resumable(before, dict(before, architecture="mlp"), 2, "r")
    step = dict(before, schedule="step")
    prepare.check_resumable(step, dict(step, epochs=6), 4, "r")  # step decay can simply go on
    with pytest.raises(config.ConfigError, match="already trained 4 of 4 epochs"):
        prepare.check_resumable(step, step, 4, "r")


def test_resume_flag_continues_a_run_with_its_own_config(tmp_path):
    cfg = _cfg(architecture="mlp", lr=0.123, epochs=2, checkpoint_dir=str(tmp_path))
    run = checkpoints.start_run(tmp_path, "run-1", cfg)
    checkpoints.save(run, 2, b"w", b"o", {"history": []})
    args = prepare.parser("").parse_args(["--resume", "--architecture", "mlp", "--epochs", "3",
                                              "--set", f"train.checkpoint_dir={tmp_path}"])
    tc = prepare.resolve_config(args)["train"]
    assert (tc["run_id"], tc["resume"], tc["lr"], tc["epochs"]) == ("run-1", True, 0.123, 3)


def test_too_few_row_groups_for_the_ranks_is_a_clear_error(tmp_path):
    table = pa.table({"label": [1, 2, 3], "pixels": [b"x" * 784] * 3})
    pq.write_table(table, tmp_path / "part-0.parquet", row_group_size=3)
    url = "file://" + str(tmp_path)
    assert shards.check_row_groups(url, 1) == 1
    with pytest.raises(ValueError, match="1 Parquet row groups but training uses 2 ranks.*files_per_split=2"):
        shards.check_row_groups(url, 2)


def test_gpu_discovery_script_lists_nvidia_smi_gpus(tmp_path):
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\nprintf '0\\n1\\n'\n")
    fake.chmod(0o755)
    script = os.path.join(ROOT, "conf", "spark", "gpu-discovery.sh")
    out = subprocess.run([script], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PATH=f"{tmp_path}:{os.environ['PATH']}")).stdout
    assert json.loads(out) == {"name": "gpu", "addresses": ["0", "1"]}
    none = subprocess.run([script], capture_output=True, text=True, check=True, env=dict(os.environ, PATH="/usr/bin:/bin")).stdout
    assert json.loads(none) == {"name": "gpu", "addresses": []}


def test_epoch_indices_of_two_ranks_give_equal_steps():
    steps = shards.equal_steps(2400, 64, lambda n: max(n, 2600))
    a = shards.epoch_indices(2400, steps, 64, np.random.default_rng(0))
    b = shards.epoch_indices(2600, steps, 64, np.random.default_rng(1))
    assert a.shape == b.shape == (41, 64)
