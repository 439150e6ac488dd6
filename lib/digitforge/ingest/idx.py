"""Read IDX files (the MNIST format), gzipped or raw, with checks that name the file and the problem.

IDX: a big-endian header (magic: 0x00 0x00 type ndim, then one uint32 size per dimension) followed by
the raw values. Images are magic 2051 (ubyte, 3 dims: count, 28, 28), labels 2049 (ubyte, 1 dim).

Images are never held whole in memory: a raw file is mapped read-only, a gzipped one is decompressed in
chunks into an unnamed spill file that is then mapped. Whoever reads the rows a chunk at a time calls
`drop_pages` after each chunk, so the process keeps one chunk resident however many rows the file holds
(labels, one byte a row, are read whole).
"""
from __future__ import annotations

import gzip
import mmap
import shutil
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np

from digitforge.core.errors import InputError
from digitforge.core.images import COLS, NUM_CLASSES, ROWS

IMAGE_MAGIC = 0x00000803
LABEL_MAGIC = 0x00000801
GZIP_MAGIC = b"\x1f\x8b"  # gzipped or not is told by the content, whatever the file's name
GZIP_ERRORS = (EOFError, OSError, zlib.error)


def bad_gzip(path: Path, e: Exception) -> InputError:
    return InputError(path, f"corrupt or truncated gzip data ({e})")


def read_bytes(path: str | Path) -> bytes:
    """The file's bytes, gunzipped when it starts with the gzip magic (small files: labels, CSVs)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    raw = path.read_bytes()
    if not raw:
        raise InputError(path, "file is empty")
    if raw[:2] == GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except GZIP_ERRORS as e:
            raise bad_gzip(path, e) from None
    return raw


def _parse(path: Path, raw: bytes, magic: int, ndim: int) -> tuple[tuple[int, ...], memoryview]:
    dims = _check_header(path, raw[:4 + 4 * ndim], len(raw), magic, ndim)
    return dims, memoryview(raw)[4 + 4 * ndim:]


def read_images(path: str | Path, spill_dir: str | Path | None = None) -> np.ndarray:
    """(N, 28, 28) uint8 images from an idx3-ubyte file, backed by a read-only mapping of the file (a
    gzipped file: of its decompressed copy in spill_dir, default the temp dir, removed when unmapped)."""
    path = Path(path)
    with _uncompressed(path, spill_dir) as f:
        header = f.read(16)
        size = f.seek(0, 2)
        if size == 0:
            raise InputError(path, "file is empty")
        dims = _check_header(path, header, size, IMAGE_MAGIC, 3)
        if dims[1:] != (ROWS, COLS):
            raise InputError(path, f"images are {dims[1]}x{dims[2]}, expected {ROWS}x{COLS}")
        if dims[0] == 0:
            raise InputError(path, "file holds 0 images")
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)  # stays valid after the file is closed
    return np.frombuffer(mapped, dtype=np.uint8, offset=16).reshape(dims)


def drop_pages(images: np.ndarray) -> None:
    """Let the kernel take back the pages of a file-mapped image array that were read so far (re-read from
    the file if touched again): a chunked reader then keeps one chunk resident, not the whole file. A no-op
    for arrays in memory."""
    base = images
    while base is not None and not isinstance(base, mmap.mmap):  # array views, then numpy's memoryview
        base = base.obj if isinstance(base, memoryview) else getattr(base, "base", None)
    if base is not None:
        base.madvise(mmap.MADV_DONTNEED)


class _uncompressed:
    """The file opened for reading, as it is or, when it starts with the gzip magic (whatever its name),
    decompressed in 16 MiB chunks into an unnamed temporary file (gone once closed and unmapped)."""

    def __init__(self, path: Path, spill_dir):
        self.path, self.spill_dir = path, spill_dir

    def __enter__(self):
        if not self.path.is_file():
            raise InputError(self.path, "file not found")
        self.f = open(self.path, "rb")
        if self.f.read(2) != GZIP_MAGIC:
            self.f.seek(0)
            return self.f
        self.f.seek(0)
        if self.spill_dir is not None:
            Path(self.spill_dir).mkdir(parents=True, exist_ok=True)
        spill = tempfile.TemporaryFile(dir=self.spill_dir)
        try:
            with gzip.GzipFile(fileobj=self.f) as gz:
                shutil.copyfileobj(gz, spill, 16 << 20)
        except GZIP_ERRORS as e:
            spill.close()
            self.f.close()
            raise bad_gzip(self.path, e) from None
        self.f.close()
        self.f = spill
        spill.seek(0)
        return spill

    def __exit__(self, *exc):
        self.f.close()


def _check_header(path: Path, header: bytes, size: int, magic: int, ndim: int) -> tuple[int, ...]:
    """The dims of an IDX file whose first bytes are header and whose (uncompressed) size is size, checked:
    the magic, and a body of exactly the values the dims promise."""
    if size < 4 + 4 * ndim:
        raise InputError(path, f"too short for an IDX header ({size} bytes)")
    (got,) = struct.unpack(">I", header[:4])
    if got != magic:
        kind = {IMAGE_MAGIC: "image", LABEL_MAGIC: "label"}[magic]
        raise InputError(path, f"wrong IDX magic {got} (0x{got:08x}); an IDX {kind} file starts with {magic} (0x{magic:08x})")
    dims = struct.unpack(f">{ndim}I", header[4:4 + 4 * ndim])
    expected, body = int(np.prod(dims)), size - 4 - 4 * ndim
    if body != expected:
        raise InputError(path, f"header promises {expected} values for shape {dims} but the file holds {body} (truncated or padded)")
    return dims


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


def read_pair(images_path: str | Path, labels_path: str | Path,
              spill_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of one split, checked to hold the same number of items (images: see read_images)."""
    images, labels = read_images(images_path, spill_dir), read_labels(labels_path)
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
