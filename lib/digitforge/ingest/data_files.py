"""Where a dataset's IDX files are: $DIGITFORGE_DATA_DIR, else ./data (downloaded there if missing)."""
from __future__ import annotations

import logging
import os
import urllib.request
from pathlib import Path

from digitforge.core.config import PROJECT_ROOT
from digitforge.core.errors import InputError
from digitforge.core.progress import progress
from digitforge.ingest.idx import find_split_files

log = logging.getLogger(__name__)

FILES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
MIRRORS = {
    "mnist": ["https://ossci-datasets.s3.amazonaws.com/mnist/",
              "https://storage.googleapis.com/cvdf-datasets/mnist/"],
    "fashion-mnist": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
}


def _has_files(folder: Path) -> bool:
    try:
        find_split_files(folder, "train"), find_split_files(folder, "test")
        return True
    except InputError:
        return False


def _download(name: str, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    errors = []
    for mirror in MIRRORS.get(name, []):
        try:
            for f in FILES:
                target = folder / f
                if not target.exists():
                    log.info("downloading %s%s", mirror, f)
                    tmp = target.with_suffix(".part")
                    with urllib.request.urlopen(mirror + f, timeout=20) as r, open(tmp, "wb") as out:
                        size = int(r.headers.get("Content-Length") or 0) or None
                        with progress(total=size, desc=f"downloading {f}", unit="B") as bar:
                            for chunk in iter(lambda: r.read(1 << 20), b""):
                                out.write(chunk)
                                bar.update(len(chunk))
                    tmp.rename(target)
            return
        except OSError as e:
            errors.append(f"{mirror}: {e}")
    raise RuntimeError("; ".join(errors) or f"no download mirror known for {name}")


def dataset_folder(name: str, folder_name: str) -> Path:
    """The folder holding a dataset's four IDX files, downloading them when nothing is configured."""
    env = os.environ.get("DIGITFORGE_DATA_DIR")
    if env:
        folder = Path(env) / folder_name
        find_split_files(folder, "train"), find_split_files(folder, "test")  # clear error if missing
        return folder
    local = PROJECT_ROOT / "data" / folder_name
    if _has_files(local):
        return local
    # A checkout next to a shared datasets folder (../shared/datasets) needs no setting.
    sibling = PROJECT_ROOT.parent / "shared" / "datasets" / folder_name
    if _has_files(sibling):
        log.info("using %s", sibling)
        return sibling
    try:
        _download(name, local)
    except RuntimeError as e:
        raise InputError(local, f"the {name} IDX files are not here and could not be downloaded ({e}). "
                         f"Set DIGITFORGE_DATA_DIR to a folder holding {folder_name}/ with "
                         f"{', '.join(FILES)}, e.g. DIGITFORGE_DATA_DIR=/path/to/datasets make demo") from None
    return local
