"""A rank's data: its shard of the snapshot (in memory or streamed), shuffled into equal steps per
epoch, and pixels turned into normalised (augmented) network inputs."""
from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist

from digitforge.core.images import INPUT_SHAPE
from digitforge.core.storage import child_url
from digitforge.snapshot import shards
from digitforge.training.augment import random_affine, random_erase
from digitforge.training.distributed import all_reduce
from digitforge.training.models import MEAN, STD


def to_input(pixels: torch.Tensor, tc: dict, device: torch.device, training: bool) -> torch.Tensor:
    """uint8 (N, 784) -> normalised float (N, 1, 28, 28) on the device, augmented when training."""
    x = pixels.to(device, non_blocking=True).reshape(-1, *INPUT_SHAPE).float().div_(255.0)
    if training and tc["augment"]:
        x = random_affine(x, shift=tc["augment_shift"], rotate=tc["augment_rotate"], scale=tc["augment_scale"],
                          flip=bool(tc["augment_flip"]))
        x = random_erase(x, float(tc["augment_erase"]))
    x = (x - MEAN) / STD
    return x.contiguous(memory_format=torch.channels_last) if tc["channels_last"] else x


def _in_memory_batches(x, y, steps, batch_size, rng):
    """One epoch of shuffled batches from tensors (on the device when training on a GPU)."""
    order = torch.from_numpy(shards.epoch_indices(len(x), steps, batch_size, rng)).to(x.device)
    for idx in order:
        yield x[idx], y[idx]


class TrainData:
    """A rank's training batches: its shard held in memory (on the GPU when there is one), or streamed
    from the snapshot every epoch. Either way every rank takes the same number of steps per epoch."""

    def __init__(self, tc: dict, manifest: dict, rank: int, world: int, device: torch.device, seed: int):
        self.batch_size = tc["batch_size"]
        if tc["data"] == "stream":
            self.steps = max(1, -(-manifest["rows"]["train"] // (world * self.batch_size)))
            self._reader = shards.stream_batches(child_url(manifest["path"], "train"), rank, world, self.batch_size,
                                                 epoch_seed(seed, rank, 0))
            self._stream = ((torch.from_numpy(px), torch.from_numpy(lb)) for px, lb in self._reader)
            self.rows = "streamed"
        elif tc["data"] == "memory":
            self._reader = None
            x, y = read_split(manifest, "train", rank, world)
            self.x, self.y = x.to(device), y.to(device)  # a GPU holds the shard: no host copies per step
            self.steps = shards.equal_steps(len(x), self.batch_size, lambda n: all_reduce(n, dist.ReduceOp.MAX))
            self.rows = len(x)
        else:
            raise ValueError(f"unknown train.data {tc['data']!r}; known: memory, stream")

    def epoch(self, rng: np.random.Generator):
        """The batches of one epoch (in memory: a fresh shuffle from rng; streamed: the next `steps` batches)."""
        if self._reader is not None:
            return self._stream
        return _in_memory_batches(self.x, self.y, self.steps, self.batch_size, rng)

    def close(self) -> None:
        """Stop the streaming reader's threads (nothing to do in memory)."""
        if self._reader is not None:
            self._reader.close()  # stops Petastorm's reader threads


def read_split(manifest: dict, split: str, rank: int, world: int) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's shard of a snapshot split as tensors (pixels uint8, labels int64), every row counted."""
    px, lb = shards.read_shard_checked(child_url(manifest["path"], split), rank, world, manifest["rows"][split], all_reduce)
    return torch.from_numpy(px), torch.from_numpy(lb)


def epoch_seed(seed: int, rank: int, epoch: int) -> int:
    """The random state of an epoch on a rank depends on (seed, rank, epoch) only, so a resumed run
    shuffles and augments exactly as the uninterrupted run would have (no RNG state to carry)."""
    return int(np.random.SeedSequence([int(seed), rank, epoch]).generate_state(1)[0])
