"""Locations as strings through one filesystem layer (core/storage.py): URLs keep their scheme and host,
local paths and file:// URLs read and write alike, and Spark gets s3a settings only for s3:// roots. Pure:
a temporary folder, no server."""
import pytest

from digitforge.core import config, storage
from digitforge.snapshot.manifest import load_manifest, snapshot_folder, write_manifest


def test_urls_keep_their_scheme_and_host():
    assert snapshot_folder("hdfs://nn:8020/snapshots", "ks", "mnist") == "hdfs://nn:8020/snapshots/ks/mnist"
    assert storage.child_url("s3://bucket/snap/", "v1", "train") == "s3://bucket/snap/v1/train"
    assert storage.child_url("/data/snap", "train") == "file:///data/snap/train"
    assert config.project_location("s3://bucket/snap") == "s3://bucket/snap"
    assert config.project_location("var/snapshots") == str(config.PROJECT_ROOT / "var" / "snapshots")
    assert storage.filesystem("s3://bucket/snap/v1")[1] == "bucket/snap/v1"


def test_a_scheme_no_filesystem_handles_names_the_setting():
    with pytest.raises(storage.StorageError, match=r"convert.snapshot_root nofs://x/y: no filesystem handles nofs://"):
        storage.filesystem("nofs://x/y", "convert.snapshot_root")


@pytest.mark.parametrize("as_url", [False, True])
def test_manifests_by_path_and_by_file_url(tmp_path, as_url):
    root = storage.to_url(tmp_path) if as_url else str(tmp_path)
    for version in ("20260101T000000000000Z", "20260102T000000000000Z"):
        write_manifest({"path": storage.join(snapshot_folder(root, "ks", "mnist"), version), "version": version,
                        "source": {"keyspace": "ks"}})
    (tmp_path / "ks" / "mnist" / "20260103T000000000000Z").mkdir()  # no manifest: incomplete, never read
    assert load_manifest(root, "mnist", "ks")["version"] == "20260102T000000000000Z"
    assert not list(tmp_path.rglob("*.tmp"))


def test_spark_gets_s3a_settings_only_for_s3_roots():
    local = config.resolve()
    assert storage.spark_conf(local) == {}
    s3 = config.resolve(["convert.snapshot_root=s3://bucket/snap", "storage.s3_endpoint=http://127.0.0.1:9000"])
    conf = storage.spark_conf(s3)
    assert conf["spark.hadoop.fs.s3.impl"] == "org.apache.hadoop.fs.s3a.S3AFileSystem"
    assert conf["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:9000"
    assert conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] == "false"
    assert not any("secret" in k or "access.key" in k for k in conf)  # credentials never come from the config
