"""Finding a snapshot: the versions of one dataset read from one keyspace, under the snapshot root (a local
path or a URL, core/storage.py), each complete once its manifest.json (rows per split, source tables) is
written.

Layout: <root>/<keyspace>/<dataset>/<version>/. Snapshots are kept per keyspace as well as per dataset,
so converting another keyspace under the same dataset name never changes the `latest` of this one.
"""
from __future__ import annotations

import json

from digitforge.core import storage

SETTING = "convert.snapshot_root"


def snapshot_folder(root, keyspace: str, dataset: str) -> str:
    """Where the versions of `dataset` converted from `keyspace` live."""
    return storage.join(root, keyspace, dataset)


def _manifests(folder) -> dict[str, str]:
    """version -> its manifest.json location, for every complete version in folder."""
    found = {}
    for version in storage.subfolders(folder, SETTING):
        manifest = storage.join(folder, version, "manifest.json")
        if storage.exists(manifest, SETTING):
            found[version] = manifest
    return found


def _versions(root, dataset: str, keyspace: str) -> dict[str, str]:
    """version -> its manifest.json, for every complete snapshot of (keyspace, dataset)."""
    found = _manifests(snapshot_folder(root, keyspace, dataset))
    # Snapshots written before they were kept per keyspace (<root>/<dataset>/<version>): this keyspace's
    # are the ones whose manifest names it as their source.
    for version, manifest in _manifests(storage.join(root, dataset)).items():
        if version not in found and json.loads(storage.read_text(manifest)).get("source", {}).get("keyspace") == keyspace:
            found[version] = manifest
    return found


def load_manifest(root, dataset: str, keyspace: str, version: str = "latest") -> dict:
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
                                f"({storage.join(folder, version, 'manifest.json')} missing)")
    return json.loads(storage.read_text(versions[version], SETTING))


def write_manifest(manifest: dict) -> None:
    """manifest.json into the snapshot's folder: written last, it makes the version complete."""
    storage.write_text(storage.join(manifest["path"], "manifest.json"), json.dumps(manifest, indent=2), SETTING)
