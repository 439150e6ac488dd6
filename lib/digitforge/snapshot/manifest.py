"""Finding a snapshot: a dataset's versions under the snapshot root, each complete once its
manifest.json (rows per split, source tables) is written."""
from __future__ import annotations

import json
from pathlib import Path


def load_manifest(root: str | Path, dataset: str, version: str = "latest") -> dict:
    """The manifest of a snapshot version (`latest`: the newest complete one)."""
    folder = Path(root) / dataset
    if version == "latest":
        done = sorted(p.parent.name for p in folder.glob("*/manifest.json"))
        if not done:
            raise FileNotFoundError(f"no complete snapshot of {dataset} under {folder}: run the convert job first")
        version = done[-1]
    path = folder / version / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"snapshot {version} of {dataset} not found or incomplete ({path} missing)")
    return json.loads(path.read_text())
