"""The networks: every architecture maps images to ten logits; the original demo's keeps its shape."""
import pytest
import torch

from digitforge.training.models import ARCHITECTURES, build_model


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_every_architecture_maps_images_to_ten_logits(name):
    assert build_model(name)(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_original_demo_network_shape():
    net = build_model("net")
    assert (net.conv1.in_channels, net.conv1.out_channels, net.conv1.kernel_size) == (1, 10, (5, 5))
    assert (net.conv2.out_channels, net.fc1.in_features, net.fc1.out_features, net.fc2.out_features) == (20, 320, 50, 10)
