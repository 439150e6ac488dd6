"""Snapshots are found per keyspace as well as per dataset: two keyspaces never share a `latest`. Pure:
manifests in a temporary folder."""
import json
from pathlib import Path

import pytest

from digitforge.snapshot.manifest import load_manifest, snapshot_folder


def manifest(root, keyspace, dataset, version, legacy=False):
    folder = (root / dataset if legacy else Path(snapshot_folder(root, keyspace, dataset))) / version
    folder.mkdir(parents=True)
    m = {"dataset": dataset, "version": version, "path": str(folder), "source": {"keyspace": keyspace}}
    (folder / "manifest.json").write_text(json.dumps(m))
    return m


def test_each_keyspace_has_its_own_latest(tmp_path):
    manifest(tmp_path, "ks_a", "mnist", "20260101T000000000000Z")
    manifest(tmp_path, "ks_b", "mnist", "20260102T000000000000Z")  # newer, another keyspace
    assert load_manifest(tmp_path, "mnist", "ks_a")["source"]["keyspace"] == "ks_a"
    assert load_manifest(tmp_path, "mnist", "ks_b")["version"] == "20260102T000000000000Z"
    with pytest.raises(FileNotFoundError, match="no complete snapshot of mnist from keyspace ks_c"):
        load_manifest(tmp_path, "mnist", "ks_c")
    with pytest.raises(FileNotFoundError, match="snapshot 20260102T000000000000Z of mnist from keyspace ks_a"):
        load_manifest(tmp_path, "mnist", "ks_a", "20260102T000000000000Z")


def test_snapshots_from_before_the_keyspace_layout_are_found_by_their_source(tmp_path):
    manifest(tmp_path, "mnist_digits", "mnist", "20250101T000000000000Z", legacy=True)
    manifest(tmp_path, "other", "mnist", "20250102T000000000000Z", legacy=True)
    assert load_manifest(tmp_path, "mnist", "mnist_digits")["version"] == "20250101T000000000000Z"
    manifest(tmp_path, "mnist_digits", "mnist", "20260101T000000000000Z")
    assert load_manifest(tmp_path, "mnist", "mnist_digits")["version"] == "20260101T000000000000Z"
    assert load_manifest(tmp_path, "mnist", "other", "20250102T000000000000Z")["source"]["keyspace"] == "other"
