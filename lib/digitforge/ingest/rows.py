"""Rows for Cassandra, in the layouts the two writers read: an Arrow table (the connector's CQL writes,
staged as Parquet) or fixed-width records (the SSTable writer tasks). Pure: no Spark, no Cassandra.

The raw tables hold (id int, label int, pixels blob): 784 bytes, row-major 28x28."""
from __future__ import annotations

import numpy as np

from digitforge.core.images import PIXELS


ROW_SCHEMA = "id int, label int, pixels binary"

# Rows turned into records or Arrow at a time (~50 MiB of pixels): staging memory stays at one chunk.
CHUNK_ROWS = 65536


def file_ranges(n: int, files: int) -> list[tuple[int, int]]:
    """(start, stop) of `files` runs of consecutive rows out of n, never an empty one (at most n files)."""
    files = max(1, min(files, n))
    return [(k * n // files, (k + 1) * n // files) for k in range(files)]


def chunks(batch, start: int = 0, stop: int | None = None, rows: int | None = None):
    """(ids, images, labels) of batch rows start..stop, `rows` at a time. The pages of file-mapped images
    (ingest/idx.py) read for a chunk are given back after it, so RSS does not grow with the batch."""
    from digitforge.ingest.idx import drop_pages

    stop = len(batch) if stop is None else stop
    rows = rows or CHUNK_ROWS
    for i in range(start, stop, rows):
        j = min(i + rows, stop)
        yield batch.ids[i:j], batch.images[i:j], None if batch.labels is None else batch.labels[i:j]
        drop_pages(batch.images)


def to_arrow(ids: np.ndarray, images: np.ndarray, labels: np.ndarray | None):
    """The rows as an Arrow table (id int32, label int32 or null, pixels binary): the pixel column's
    values are the images' own bytes, cut every 784 bytes by an offsets array. Pure."""
    import pyarrow as pa

    n = len(ids)
    flat = np.ascontiguousarray(images, dtype=np.uint8).reshape(n, -1)
    if flat.shape[1] != PIXELS:
        raise ValueError(f"expected {PIXELS} pixels per image, got {flat.shape[1]}")
    offsets = np.arange(0, PIXELS * (n + 1), PIXELS, dtype=np.int32)
    pixels = pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(flat)])
    label = pa.array(labels.astype(np.int32)) if labels is not None else pa.nulls(n, pa.int32())
    return pa.table({"id": pa.array(np.asarray(ids, dtype=np.int32)), "label": label, "pixels": pixels})


RECORD = np.dtype([("id", ">i4"), ("label", ">i4"), ("pixels", "u1", (PIXELS,))])


# The raw tables' columns, in the order the SSTable writer takes them (schema/*.cql).
RAW_COLUMNS = (("id", "int"), ("label", "int"), ("pixels", "blob"))


def to_records(ids: np.ndarray, images: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
    """Rows as fixed-width records, the layout the SSTable writer tasks read (SparkSSTableWriter.RECORD_BYTES):
    id int32, label int32 (-1 when unlabelled), 784 pixel bytes; big-endian. Pure."""
    n = len(ids)
    records = np.empty(n, dtype=RECORD)
    records["id"] = ids
    records["label"] = -1 if labels is None else labels
    records["pixels"] = np.ascontiguousarray(images, dtype=np.uint8).reshape(n, PIXELS)
    return records
