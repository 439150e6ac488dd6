"""Finding a snapshot: the versions of one dataset read from one keyspace, under the snapshot root, each
complete once its manifest.json (rows per split, source tables) is written.

Layout: <root>/<keyspace>/<dataset>/<version>/. Snapshots are kept per keyspace as well as per dataset,
so converting another keyspace under the same dataset name never changes the `latest` of this one.
"""
from __future__ import annotations

import json
from pathlib import Path


def snapshot_folder(root: str | Path, keyspace: str, dataset: str) -> Path:
    """Where the versions of `dataset` converted from `keyspace` live."""
    return Path(root) / keyspace / dataset


def _versions(root: str | Path, dataset: str, keyspace: str) -> dict[str, Path]:
    """version -> its manifest.json, for every complete snapshot of (keyspace, dataset)."""
    found = {p.parent.name: p for p in snapshot_folder(root, keyspace, dataset).glob("*/manifest.json")}
    # Snapshots written before they were kept per keyspace (<root>/<dataset>/<version>): this keyspace's
    # are the ones whose manifest names it as their source.
    for p in (Path(root) / dataset).glob("*/manifest.json"):
        if p.parent.name not in found and json.loads(p.read_text()).get("source", {}).get("keyspace") == keyspace:
            found[p.parent.name] = p
    return found


def load_manifest(root: str | Path, dataset: str, keyspace: str, version: str = "latest") -> dict:
    """The manifest of a snapshot version of `dataset` converted from `keyspace` (`latest`: the newest
    complete one)."""
    versions = _versions(root, dataset, keyspace)
    folder = snapshot_folder(root, keyspace, dataset)
    if version == "latest":
        if not versions:
            raise FileNotFoundError(f"no complete snapshot of {dataset} from keyspace {keyspace} under {folder}: "
                                    f"run the convert job first (scripts/submit.sh convert --dataset {dataset} "
                                    f"--keyspace {keyspace})")
        version = max(versions)
    if version not in versions:
        raise FileNotFoundError(f"snapshot {version} of {dataset} from keyspace {keyspace} not found or incomplete "
                                f"({folder / version / 'manifest.json'} missing)")
    return json.loads(versions[version].read_text())
