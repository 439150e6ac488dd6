"""Read one rank's shard of a Petastorm snapshot split into memory, vectorised and checked.

Petastorm shards by Parquet row group and does not read torchrun's RANK: the caller passes
cur_shard/shard_count. Petastorm 0.13.1's thread pool can end a pass with zero rows and no error
(a race in workers_pool/thread_pool.py get_results), so every read is counted and checked.
"""
from __future__ import annotations

import logging

import numpy as np

from digitforge.core import storage
from digitforge.core.images import PIXELS

log = logging.getLogger(__name__)


class ShortReadError(RuntimeError):
    """The ranks read fewer rows than the snapshot holds, even after retries."""


def decode(batch) -> tuple[np.ndarray, np.ndarray]:
    """A make_batch_reader batch -> (pixels uint8 (n, 784), labels int64 (n,)).
    One join + frombuffer per batch: no per-image Python work."""
    pixels = np.frombuffer(b"".join(batch.pixels), dtype=np.uint8).reshape(-1, PIXELS)
    return pixels, np.asarray(batch.label, dtype=np.int64)


def row_groups(url: str) -> int:
    """Parquet row groups of a snapshot split: Petastorm's unit of sharding."""
    import pyarrow.parquet as pq

    fs = storage.filesystem(url, "convert.snapshot_root")[0]
    files = storage.files_under(url, ".parquet", "convert.snapshot_root")
    return sum(pq.ParquetFile(fs.open_input_file(f)).metadata.num_row_groups for f in files)


def check_row_groups(url: str, ranks: int) -> int:
    """Each rank reads whole row groups: fewer row groups than ranks would leave a rank without data."""
    n = row_groups(url)
    if n < ranks:
        raise ValueError(f"{url} has {n} Parquet row groups but training uses {ranks} ranks; each rank needs "
                         f"at least one: convert again with --set convert.files_per_split={ranks} (or more)")
    return n


def read_shard(url: str, cur_shard: int, shard_count: int, workers: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(pixels uint8 (n, 784), labels int64 (n,)) of this shard, read with make_batch_reader."""
    from petastorm import make_batch_reader

    pixels, labels = [], []
    with make_batch_reader(url, schema_fields=["label", "pixels"], cur_shard=cur_shard, shard_count=shard_count,
                           filesystem=storage.petastorm_filesystem(url), num_epochs=1, shuffle_row_groups=False, workers_count=workers,
                           reader_pool_type="thread") as reader:
        for batch in reader:
            px, lb = decode(batch)
            pixels.append(px)
            labels.append(lb)
    if not pixels:
        return np.empty((0, PIXELS), np.uint8), np.empty((0,), np.int64)
    return np.concatenate(pixels), np.concatenate(labels)


def read_shard_checked(url: str, cur_shard: int, shard_count: int, total_rows: int, all_reduce_sum,
                       attempts: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """read_shard, repeated until the rows read by all ranks add up to the snapshot's row count.

    all_reduce_sum(int) -> int sums a number over the ranks (every rank calls it the same number of
    times, so the retry decision is the same everywhere)."""
    for attempt in range(1, attempts + 1):
        x, y = read_shard(url, cur_shard, shard_count)
        got = all_reduce_sum(len(x))
        if got == total_rows:
            return x, y
        log.warning("shard read of %s returned %d of %d rows in total (attempt %d of %d); reading again",
                    url, got, total_rows, attempt, attempts)
    raise ShortReadError(f"{url}: the ranks read {got} rows, the snapshot holds {total_rows}")


def equal_steps(local_rows: int, batch_size: int, all_reduce_max) -> int:
    """Steps per epoch for every rank: enough for the largest shard. Smaller shards wrap around, so
    every rank takes the same number of steps (uneven steps hang DDP's all-reduce)."""
    return max(1, -(-all_reduce_max(local_rows) // batch_size))


def epoch_indices(n: int, steps: int, batch_size: int, rng: np.random.Generator) -> np.ndarray:
    """A shuffled order of 0..n-1, repeated as needed to fill steps*batch_size, shape (steps, batch)."""
    need = steps * batch_size
    reps = -(-need // n)
    order = np.concatenate([rng.permutation(n) for _ in range(reps)])[:need]
    return order.reshape(steps, batch_size)


def stream_batches(url: str, cur_shard: int, shard_count: int, batch_size: int, seed: int,
                   buffer_rows: int = 8192, workers: int = 2):
    """Endless (pixels uint8 (b, 784), labels int64 (b,)) batches of this shard, streamed with
    make_batch_reader (num_epochs=None) instead of held in memory: row groups in a shuffled order,
    rows shuffled within a buffer of about buffer_rows. The caller takes as many batches per epoch as
    it needs, so every rank takes the same number of steps whatever its shard's size."""
    from petastorm import make_batch_reader

    rng = np.random.default_rng(seed)
    px_buf, lb_buf = np.empty((0, PIXELS), np.uint8), np.empty((0,), np.int64)
    with make_batch_reader(url, schema_fields=["label", "pixels"], cur_shard=cur_shard, shard_count=shard_count,
                           filesystem=storage.petastorm_filesystem(url), num_epochs=None, shuffle_row_groups=True, seed=seed, workers_count=workers,
                           reader_pool_type="thread") as reader:
        for batch in reader:
            px, lb = decode(batch)
            px_buf, lb_buf = np.concatenate([px_buf, px]), np.concatenate([lb_buf, lb])
            if len(px_buf) < buffer_rows:
                continue
            perm = rng.permutation(len(px_buf))
            full = len(perm) // batch_size * batch_size
            for start in range(0, full, batch_size):
                take = perm[start:start + batch_size]
                yield px_buf[take], lb_buf[take]
            px_buf, lb_buf = px_buf[perm[full:]], lb_buf[perm[full:]]
    raise ShortReadError(f"{url}: the endless reader of shard {cur_shard}/{shard_count} stopped")
