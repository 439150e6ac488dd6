"""A dataset split's rows outside Spark, as numpy: from a snapshot's Parquet files (pyarrow), or from
the raw table in Cassandra (the driver), a chunk at a time. For evaluations and reports on the driver."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from digitforge.core.connection import session
from digitforge.core.images import NUM_CLASSES, PIXELS, SHAPE
from digitforge.core import storage

log = logging.getLogger(__name__)


CHUNK_ROWS = 10_000  # rows read, decoded and scored at a time: ~8 MB of pixels, whatever the split's size


@dataclass
class LabelledRows:
    """Labelled images, a chunk of a split, as numpy."""
    ids: np.ndarray      # (N,) int
    labels: np.ndarray   # (N,) int
    pixels: np.ndarray   # (N, 28, 28) uint8
    source: str          # where they came from, for logs and reports

    def __len__(self) -> int:
        return len(self.ids)


class SplitRows:
    """A split's labelled rows for evaluations and reports on the driver, read CHUNK_ROWS at a time: a test
    split of any size is scored in bounded memory. Each chunks() call is a fresh pass (the retrain job scores
    two models on the very same rows)."""

    def __init__(self, source: str, passes: Callable[[], Iterator[LabelledRows]]):
        self.source, self._passes = source, passes

    def chunks(self) -> Iterator[LabelledRows]:
        return self._passes()


def _labelled_rows(ids, labels, blobs, source: str) -> LabelledRows:
    bad = next((i for i, b in zip(ids, blobs) if b is None or len(b) != PIXELS), None)
    if bad is not None:
        raise ValueError(f"{source}: row id {bad}: pixels is not a {PIXELS}-byte blob")
    if any(lb is None for lb in labels):
        raise ValueError(f"{source}: unlabelled rows (label is null): cannot evaluate on them")
    # one copy, writable (torch takes the array as it is)
    pixels = np.frombuffer(bytearray(b"".join(blobs)), dtype=np.uint8).reshape(-1, *SHAPE)
    return LabelledRows(np.asarray(ids, dtype=np.int64), np.asarray(labels, dtype=np.int64), pixels, source)


def from_snapshot(manifest: dict, split: str = "test") -> SplitRows:
    """The split of a snapshot (its manifest), read with pyarrow a chunk at a time. The row count in the
    files' footers is checked against the manifest now, so an unreadable or short snapshot fails here."""
    import pyarrow.dataset as ds

    fs, path = storage.filesystem(storage.join(manifest["path"], split), "convert.snapshot_root")
    source = f"snapshot {manifest['version']}/{split}"
    dataset = ds.dataset(path, format="parquet", filesystem=fs)
    found = dataset.count_rows()
    if found != manifest["rows"][split]:
        raise ValueError(f"{source}: holds {found} rows, its manifest says {manifest['rows'][split]}")

    def passes() -> Iterator[LabelledRows]:
        for batch in dataset.to_batches(columns=["id", "label", "pixels"], batch_size=CHUNK_ROWS):
            yield _labelled_rows(batch.column("id").to_pylist(), batch.column("label").to_pylist(),
                                 batch.column("pixels").to_pylist(), source)

    return SplitRows(source, passes)


def from_cassandra(cfg: dict, keyspace: str, table: str = "raw_test") -> SplitRows:
    """A raw table (pixels as blobs) read with the driver, a page at a time. An empty table is a ValueError."""
    source = f"{keyspace}.{table}"
    with session(cfg, keyspace) as s:
        if s.execute(f"SELECT id FROM {table} LIMIT 1").one() is None:
            raise ValueError(f"{source} is empty")

    def passes() -> Iterator[LabelledRows]:
        with session(cfg, keyspace) as s:
            s.default_fetch_size = CHUNK_ROWS
            result = s.execute(f"SELECT id, label, pixels FROM {table}")
            while True:
                page = result.current_rows
                if page:
                    yield _labelled_rows([r.id for r in page], [r.label for r in page], [r.pixels for r in page],
                                         source)
                if not result.has_more_pages:
                    return
                result.fetch_next_page()

    return SplitRows(source, passes)


def label_counts(manifest: dict, split: str, num_classes: int = NUM_CLASSES) -> list[int]:
    """Images per label in a snapshot split (reads only the label column)."""
    import pyarrow.parquet as pq

    fs, path = storage.filesystem(storage.join(manifest["path"], split), "convert.snapshot_root")
    labels = pq.read_table(path, columns=["label"], filesystem=fs).column("label")
    return np.bincount(np.asarray(labels.drop_null()), minlength=num_classes)[:num_classes].tolist()
