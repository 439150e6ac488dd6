"""The networks digitforge trains. Every model takes (N, 1, 28, 28) normalised floats, returns logits."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from digitforge.core.images import INPUT_SHAPE, NUM_CLASSES, PIXELS

MEAN, STD = 0.1307, 0.3081  # MNIST pixel statistics; inputs are (x/255 - MEAN) / STD


class Net(nn.Module):
    """The original demo's network: conv 1->10 k5, conv 10->20 k5, dropout, fc 320->50, fc 50->10."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.conv2_drop = nn.Dropout2d()
        self.fc1 = nn.Linear(320, 50)
        self.fc2 = nn.Linear(50, NUM_CLASSES)

    def forward(self, x):
        """Logits (N, 10) of normalised images (N, 1, 28, 28)."""
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2_drop(self.conv2(x)), 2))
        x = x.flatten(1)
        x = F.dropout(F.relu(self.fc1(x)), training=self.training)
        return self.fc2(x)


class MLP(nn.Module):
    """784-128-64-10, as in the classic MXNet tutorial."""

    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Flatten(), nn.Linear(PIXELS, 128), nn.ReLU(),
                                    nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, NUM_CLASSES))

    def forward(self, x):
        """Logits (N, 10) of normalised images (N, 1, 28, 28)."""
        return self.layers(x)


class LeNet5(nn.Module):
    """LeNet as in the MXNet tutorial: conv 20 k5, conv 50 k5 (tanh, max-pool), fc 500, fc 10."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 20, 5), nn.Tanh(), nn.MaxPool2d(2, 2),
            nn.Conv2d(20, 50, 5), nn.Tanh(), nn.MaxPool2d(2, 2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(50 * 4 * 4, 500), nn.Tanh(), nn.Linear(500, NUM_CLASSES))

    def forward(self, x):
        """Logits (N, 10) of normalised images (N, 1, 28, 28)."""
        return self.classifier(self.features(x))


def _conv_bn(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class FastCNN(nn.Module):
    """A small modern CNN for CPU training: 3x3 convs with batch norm, one conv at full resolution and
    two at each of 14x14 and 7x7 (where convs are cheap), global max pool, linear head.

    `width` scales every layer: 16 (70k parameters) for MNIST, 48 (626k) for Fashion-MNIST. The cost
    is in the convs at 14x14 and 7x7, so the first pooling comes straight after the stem."""

    def __init__(self, width: int = 16):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            _conv_bn(1, w), nn.MaxPool2d(2),                               # 28 -> 14
            _conv_bn(w, 2 * w), _conv_bn(2 * w, 2 * w), nn.MaxPool2d(2),   # 14 -> 7
            _conv_bn(2 * w, 4 * w), _conv_bn(4 * w, 4 * w), nn.AdaptiveMaxPool2d(1))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * w, NUM_CLASSES))

    def forward(self, x):
        """Logits (N, 10) of normalised images (N, 1, 28, 28)."""
        return self.head(self.features(x))


ARCHITECTURES = {"net": Net, "mlp": MLP, "lenet5": LeNet5, "fastcnn": FastCNN}


def build_model(name: str, width: int | None = None) -> nn.Module:
    """The named network; `width` (channels of the first layer) applies to fastcnn only."""
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}")
    if width:
        if name != "fastcnn":
            raise ValueError(f"train.width applies to fastcnn only, not to {name!r} (set it to 0)")
        return ARCHITECTURES[name](width=int(width))
    return ARCHITECTURES[name]()


def width_of(name: str, state_dict: dict) -> int | None:
    """The `width` a state dict of `name` was trained with (fastcnn: its stem's output channels), so weights
    load into the network they came from whatever train.width was; None for fixed-size networks."""
    stem = state_dict.get("features.0.0.weight")
    return int(stem.shape[0]) if name == "fastcnn" and stem is not None else None


def normalise(pixels_u8: torch.Tensor) -> torch.Tensor:
    """(N, 784) or (N, 28, 28) uint8 -> (N, 1, 28, 28) float, normalised."""
    return ((pixels_u8.reshape(-1, *INPUT_SHAPE).float() / 255.0) - MEAN) / STD
