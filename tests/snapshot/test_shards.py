"""A rank's share of a snapshot: equal steps per rank, every row in each epoch."""
import numpy as np

from digitforge.snapshot import shards


def test_equal_steps_and_epoch_indices_cover_every_row():
    steps = shards.equal_steps(101, 10, lambda n: max(n, 250))  # another rank has 250 rows
    assert steps == 25
    order = shards.epoch_indices(101, steps, 10, np.random.default_rng(0))
    assert order.shape == (25, 10)
    assert set(order.ravel()) == set(range(101))
