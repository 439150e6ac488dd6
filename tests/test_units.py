"""Pure functions: config overrides, row building, shard steps, safe artifacts, models, metrics."""
import numpy as np
import pytest
import torch

from digitforge.registry import artifacts
from digitforge.core import config
from digitforge.snapshot import shards
from digitforge.training.models import ARCHITECTURES, build_model, normalise
from digitforge.core.metrics import stored_per_class


def test_overrides_parse_yaml_scalars_and_reject_unknown_keys():
    cfg = config.resolve(["train.lr=0.05", "train.use_gpu=true"], **{"train.epochs": 3, "train.seed": None})
    assert cfg["train"]["lr"] == 0.05 and cfg["train"]["use_gpu"] is True and cfg["train"]["epochs"] == 3
    with pytest.raises(config.ConfigError, match="unknown config key 'train.lrr'"):
        config.resolve(["train.lrr=1"])
    with pytest.raises(config.ConfigError, match="not of the form"):
        config.resolve(["train.lr"])


def test_unknown_dataset_lists_known_ones():
    with pytest.raises(config.ConfigError, match="known datasets: fashion-mnist, mnist"):
        config.dataset_info(config.resolve(), "cifar")


def test_equal_steps_and_epoch_indices_cover_every_row():
    steps = shards.equal_steps(101, 10, lambda n: max(n, 250))  # another rank has 250 rows
    assert steps == 25
    order = shards.epoch_indices(101, steps, 10, np.random.default_rng(0))
    assert order.shape == (25, 10)
    assert set(order.ravel()) == set(range(101))


def test_weights_and_optimizer_round_trip_through_safetensors():
    model = build_model("net")
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    model(normalise(torch.zeros(4, 784, dtype=torch.uint8))).sum().backward()
    opt.step()
    weights = artifacts.weights_from_bytes(artifacts.weights_to_bytes(model.state_dict()))
    for k, v in model.state_dict().items():
        assert torch.equal(weights[k], v)
    blob = artifacts.optimizer_to_bytes(opt.state_dict())
    assert not blob.startswith(b"\x80")  # not a pickle
    state = artifacts.optimizer_from_bytes(blob)
    opt2 = torch.optim.Adam(build_model("net").parameters(), lr=0.5)
    opt2.load_state_dict(state)
    assert opt2.param_groups[0]["lr"] == 0.01
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_every_architecture_maps_images_to_ten_logits(name):
    assert build_model(name)(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_original_demo_network_shape():
    net = build_model("net")
    assert (net.conv1.in_channels, net.conv1.out_channels, net.conv1.kernel_size) == (1, 10, (5, 5))
    assert (net.conv2.out_channels, net.fc1.in_features, net.fc1.out_features, net.fc2.out_features) == (20, 320, 50, 10)


def test_class_metrics_from_confusion_matrix():
    cm = np.zeros((10, 10), int)
    cm[0, 0], cm[0, 1], cm[1, 1] = 8, 2, 10
    m = stored_per_class(cm)
    assert m["recall"][0] == 0.8 and m["precision"][1] == pytest.approx(10 / 12, abs=1e-4)
