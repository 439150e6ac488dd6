"""A dataset split's rows outside Spark, as numpy: from a snapshot's Parquet files (pyarrow), or from
the raw table in Cassandra (the driver). For evaluations and reports on the driver: 10,000 test rows
are under 8 MB."""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from digitforge.core.connection import session
from digitforge.core.images import NUM_CLASSES, PIXELS, SHAPE
from digitforge.core import storage

log = logging.getLogger(__name__)


@dataclass
class LabelledRows:
    """Labelled images of a split, sorted by id, as numpy (for evaluations and reports on the driver)."""
    ids: np.ndarray      # (N,) int
    labels: np.ndarray   # (N,) int
    pixels: np.ndarray   # (N, 28, 28) uint8
    source: str          # where they came from, for logs and reports

    def __len__(self) -> int:
        return len(self.ids)


def _labelled_rows(ids, labels, blobs, source: str) -> LabelledRows:
    bad = next((i for i, b in zip(ids, blobs) if b is None or len(b) != PIXELS), None)
    if bad is not None:
        raise ValueError(f"{source}: row id {bad}: pixels is not a {PIXELS}-byte blob")
    if any(lb is None for lb in labels):
        raise ValueError(f"{source}: unlabelled rows (label is null): cannot evaluate on them")
    order = np.argsort(np.asarray(ids), kind="stable")  # a stable order, whatever the file or token order
    pixels = np.frombuffer(b"".join(blobs), dtype=np.uint8).reshape(-1, *SHAPE) if len(blobs) else np.zeros((0, *SHAPE), np.uint8)
    return LabelledRows(np.asarray(ids, dtype=np.int64)[order], np.asarray(labels, dtype=np.int64)[order], pixels[order], source)


def from_snapshot(manifest: dict, split: str = "test") -> LabelledRows:
    """The split of a snapshot (its manifest), read with pyarrow, sorted by id."""
    import pyarrow.parquet as pq

    fs, path = storage.filesystem(storage.join(manifest["path"], split), "convert.snapshot_root")
    table = pq.read_table(path, columns=["id", "label", "pixels"], filesystem=fs)
    rows = _labelled_rows(table.column("id").to_pylist(), table.column("label").to_pylist(),
                    table.column("pixels").to_pylist(), f"snapshot {manifest['version']}/{split}")
    if len(rows) != manifest["rows"][split]:
        raise ValueError(f"snapshot {manifest['version']}/{split}: holds {len(rows)} rows, its manifest says "
                         f"{manifest['rows'][split]}")
    return rows


def from_cassandra(cfg: dict, keyspace: str, table: str = "raw_test") -> LabelledRows:
    """A raw table (pixels as blobs) read with the driver, sorted by id."""
    with session(cfg, keyspace) as s:
        s.default_fetch_size = 2000
        result = list(s.execute(f"SELECT id, label, pixels FROM {table}"))
    return _labelled_rows([r.id for r in result], [r.label for r in result], [r.pixels for r in result],
                    f"{keyspace}.{table}")


def label_counts(manifest: dict, split: str, num_classes: int = NUM_CLASSES) -> list[int]:
    """Images per label in a snapshot split (reads only the label column)."""
    import pyarrow.parquet as pq

    fs, path = storage.filesystem(storage.join(manifest["path"], split), "convert.snapshot_root")
    labels = pq.read_table(path, columns=["label"], filesystem=fs).column("label")
    return np.bincount(np.asarray(labels.drop_null()), minlength=num_classes)[:num_classes].tolist()
