"""What to ingest: input files -> batches of rows for one table each, all read and checked before a row is
written. IDX images stay in their files (mapped, see ingest/idx.py: memory does not grow with the rows); a
CSV is parsed whole (Kaggle's files are tens of thousands of rows).

IDX keeps its canonical train/test files (ids 0..N-1 in each table). A labelled Kaggle CSV is split into
raw_train / raw_test by a seeded, optionally stratified draw; an unlabelled one goes to raw_predict. A CSV
row's id is its data row - 1 whichever table it lands in, so running the same ingest again rewrites exactly
the same rows. Pure: no Spark, no Cassandra.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digitforge.core.config import ConfigError
from digitforge.core.errors import InputError
from digitforge.core.images import NUM_CLASSES
from digitforge.ingest import idx
from digitforge.ingest import kaggle_csv


@dataclass(frozen=True)
class Batch:
    """The checked rows one table receives: ids, images, labels (None when unlabelled) and their files."""
    table: str
    ids: np.ndarray              # (N,) int32, unique within the table
    images: np.ndarray           # (N, 28, 28) uint8
    labels: np.ndarray | None    # (N,) uint8 0..9, None when unlabelled
    source: str                  # the file(s) the rows come from

    def __len__(self) -> int:
        return len(self.ids)


def from_idx(folder: str | Path, limit: int | None = None, spill_dir: str | Path | None = None) -> list[Batch]:
    """raw_train and raw_test from a folder of IDX files (train-*, t10k-*; gz or raw; a gzipped file's
    images decompressed into spill_dir)."""
    batches = []
    for split, table in (("train", "raw_train"), ("test", "raw_test")):
        images_path, labels_path = idx.find_split_files(folder, split)
        images, labels = idx.read_pair(images_path, labels_path, spill_dir)
        images, labels = images[:limit], labels[:limit]
        batches.append(Batch(table, np.arange(len(images), dtype=np.int32), images, labels,
                             f"{images_path}, {labels_path}"))
    return batches


def from_csv(paths: list[str | Path], ratio: float, seed: int, stratify: bool,
             limit: int | None = None) -> list[Batch]:
    """A labelled CSV split into raw_train / raw_test, and/or an unlabelled CSV into raw_predict."""
    if not 0 < ratio <= 1:
        raise ConfigError(f"ingest.split_ratio must be in (0, 1], got {ratio}")
    batches, seen = [], {}
    for path in paths:
        images, labels = kaggle_csv.read_csv(path)
        images = images[:limit]
        ids = np.arange(len(images), dtype=np.int32)
        kind = "unlabelled" if labels is None else "labelled"
        if kind in seen:  # ids are row numbers: two files of a kind would overwrite each other's rows
            raise InputError(path, f"a second {kind} CSV (the first is {seen[kind]}); ingest one labelled "
                             "and at most one unlabelled CSV per run, or use another keyspace")
        seen[kind] = path
        if labels is None:
            batches.append(Batch("raw_predict", ids, images, None, str(path)))
            continue
        labels = labels[:limit]
        train = split_mask(labels, ratio, seed, stratify)
        for table, mask in (("raw_train", train), ("raw_test", ~train)):
            if mask.any():
                batches.append(Batch(table, ids[mask], images[mask], labels[mask], str(path)))
    return batches


def split_mask(labels: np.ndarray, ratio: float, seed: int, stratify: bool) -> np.ndarray:
    """True for the rows that go to training: round(ratio * n) of them, drawn with a seeded generator,
    per label when stratified (each class keeps its share in both splits)."""
    rng = np.random.default_rng(seed)
    train = np.zeros(len(labels), dtype=bool)
    groups = [np.flatnonzero(labels == c) for c in range(NUM_CLASSES)] if stratify else [np.arange(len(labels))]
    for members in groups:
        chosen = rng.permutation(members)[:round(ratio * len(members))]
        train[chosen] = True
    return train


def read_batches(cfg: dict, dataset: str, csv_paths: list[str] | None = None, data_dir: str | Path | None = None,
                 limit: int | None = None) -> list[Batch]:
    """What one ingest run writes, read and checked: the Kaggle CSVs if given (split by the
    `ingest:` settings), else the IDX files of `data_dir` or of the dataset's folder under the data dir."""
    from digitforge.core.config import dataset_info
    from digitforge.core.storage import is_url
    from digitforge.ingest.data_files import dataset_folder
    from digitforge.ingest.load import staging_root

    icfg = cfg["ingest"]
    if csv_paths:
        return from_csv(csv_paths, icfg["split_ratio"], icfg["split_seed"], icfg["stratify"], limit)
    # A gzipped IDX file is spilled decompressed beside the staged rows, or in the temp dir when they go to a URL.
    spill_dir = None if is_url(icfg["staging_dir"]) else staging_root(cfg)
    return from_idx(data_dir or dataset_folder(dataset, dataset_info(cfg, dataset)["folder"]), limit,
                    spill_dir=spill_dir)
