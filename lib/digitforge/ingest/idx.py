"""Read IDX files (the MNIST format), gzipped or raw, with checks that name the file and the problem.

IDX: a big-endian header (magic: 0x00 0x00 type ndim, then one uint32 size per dimension) followed by
the raw values. Images are magic 2051 (ubyte, 3 dims: count, 28, 28), labels 2049 (ubyte, 1 dim).
"""
from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from digitforge.core.errors import InputError
from digitforge.core.images import COLS, NUM_CLASSES, ROWS

IMAGE_MAGIC = 0x00000803
LABEL_MAGIC = 0x00000801


def read_bytes(path: str | Path) -> bytes:
    """The file's bytes, gunzipped when it starts with the gzip magic (whatever its name)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    raw = path.read_bytes()
    if not raw:
        raise InputError(path, "file is empty")
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as e:
            raise InputError(path, f"corrupt or truncated gzip data ({e})") from None
    return raw


def _parse(path: Path, raw: bytes, magic: int, ndim: int) -> tuple[tuple[int, ...], memoryview]:
    if len(raw) < 4 + 4 * ndim:
        raise InputError(path, f"too short for an IDX header ({len(raw)} bytes)")
    (got,) = struct.unpack(">I", raw[:4])
    if got != magic:
        kind = {IMAGE_MAGIC: "image", LABEL_MAGIC: "label"}[magic]
        raise InputError(path, f"wrong IDX magic {got} (0x{got:08x}); an IDX {kind} file starts with {magic} (0x{magic:08x})")
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    body = memoryview(raw)[4 + 4 * ndim:]
    expected = int(np.prod(dims))
    if len(body) != expected:
        raise InputError(path, f"header promises {expected} values for shape {dims} but the file holds {len(body)} (truncated or padded)")
    return dims, body


def read_images(path: str | Path) -> np.ndarray:
    """(N, 28, 28) uint8 images from an idx3-ubyte file."""
    path = Path(path)
    dims, body = _parse(path, read_bytes(path), IMAGE_MAGIC, 3)
    if dims[1:] != (ROWS, COLS):
        raise InputError(path, f"images are {dims[1]}x{dims[2]}, expected {ROWS}x{COLS}")
    if dims[0] == 0:
        raise InputError(path, "file holds 0 images")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def read_labels(path: str | Path) -> np.ndarray:
    """(N,) uint8 labels 0..9 from an idx1-ubyte file."""
    path = Path(path)
    dims, body = _parse(path, read_bytes(path), LABEL_MAGIC, 1)
    labels = np.frombuffer(body, dtype=np.uint8)
    bad = np.flatnonzero(labels >= NUM_CLASSES)
    if bad.size:
        raise InputError(path, f"label {labels[bad[0]]} outside 0-{NUM_CLASSES - 1} ({bad.size} such labels)",
                         row=int(bad[0]) + 1)
    return labels


def read_pair(images_path: str | Path, labels_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of one split, checked to hold the same number of items."""
    images, labels = read_images(images_path), read_labels(labels_path)
    if len(images) != len(labels):
        raise InputError(images_path, f"{len(images)} images but {labels_path} holds {len(labels)} labels")
    return images, labels


def find_split_files(folder: str | Path, split: str) -> tuple[Path, Path]:
    """The images and labels files of a split ('train' or 't10k'/'test') in a dataset folder.

    Accepts the usual names, gzipped or not: train-images-idx3-ubyte[.gz], train-images.idx3-ubyte, ...
    """
    folder = Path(folder)
    prefix = {"train": "train", "test": "t10k", "t10k": "t10k"}[split]
    found = []
    for kind, idx in (("images", "idx3"), ("labels", "idx1")):
        names = [f"{prefix}-{kind}-{idx}-ubyte{ext}" for ext in (".gz", "")]
        names += [f"{prefix}-{kind}.{idx}-ubyte{ext}" for ext in (".gz", "")]
        path = next((folder / n for n in names if (folder / n).is_file()), None)
        if path is None:
            raise InputError(folder / names[0], f"missing {split} {kind} file (looked for {', '.join(names)})")
        found.append(path)
    return found[0], found[1]
