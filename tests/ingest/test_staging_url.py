"""The ingest staging area by URL (ingest.staging_dir=s3://...), on a real S3-compatible server (moto's, from
.venv-s3, on 127.0.0.1), so executors need no shared disk: with the stream writer the driver stages the record
files in the bucket, the writing tasks read them from there and copy their SSTables up there, and the streaming
tasks copy them down and stream them to the node; with the cql writer the connector reads the staged Parquet from
the bucket. The rows arrive exactly and the staging folder is gone from the bucket afterwards. The sstable writer
(the node imports a local folder) is refused with a URL, and staging that does not answer fails before anything
is written, both naming ingest.staging_dir."""
import gzip

import numpy as np
import pytest

from conftest import BUCKET, CREDENTIALS, ROOT, free_port, last_json, run

pytestmark = pytest.mark.integration
SUBMIT = str(ROOT / "scripts" / "submit.sh")


def stored(keyspace: str, table: str) -> dict[int, tuple[int, bytes]]:
    from digitforge.core import config
    from digitforge.core.connection import session

    with session(config.resolve(), keyspace) as s:
        return {r.id: (r.label, bytes(r.pixels)) for r in s.execute(f"SELECT id, label, pixels FROM {table}")}


def idx_rows(folder, prefix: str) -> dict[int, tuple[int, bytes]]:
    images = np.frombuffer(gzip.open(folder / f"{prefix}-images-idx3-ubyte.gz").read()[16:], np.uint8).reshape(-1, 784)
    labels = np.frombuffer(gzip.open(folder / f"{prefix}-labels-idx1-ubyte.gz").read()[8:], np.uint8)
    return {i: (int(labels[i]), images[i].tobytes()) for i in range(len(labels))}


def bucket_files(s3_endpoint: str, prefix: str) -> list[str]:
    import pyarrow.fs as pafs

    fs = pafs.S3FileSystem(endpoint_override=s3_endpoint.removeprefix("http://"), scheme="http", region="us-east-1")
    return [i.path for i in fs.get_file_info(pafs.FileSelector(f"{BUCKET}/{prefix}", recursive=True,
                                                                allow_not_found=True)) if i.type == pafs.FileType.File]


@pytest.mark.parametrize("writer", ["stream", "cql"])
def test_ingest_stages_rows_and_sstables_in_s3(writer, s3_endpoint, module_keyspace, make_idx_dataset):
    _, ks = module_keyspace
    data = make_idx_dataset(900, 300, seed=7)
    staging = f"s3://{BUCKET}/staging-{writer}"
    proc = run([SUBMIT, "ingest", "--dataset", "mnist", "--keyspace", ks, "--data-dir", str(data),
                "--set", f"ingest.writer={writer}", "--set", f"ingest.staging_dir={staging}",
                "--set", f"storage.s3_endpoint={s3_endpoint}"])
    out = proc.stdout + proc.stderr
    summary = last_json(proc.stdout)
    assert {t["table"]: (t["writer"], t["found"]) for t in summary["tables"]} == \
        {f"{ks}.raw_train": (writer, 900), f"{ks}.raw_test": (writer, 300)}
    if writer == "stream":  # the SSTables went through the bucket, and from there to the node
        assert "SSTable folders written" in out and f"in {staging}/{ks}-" in out and "streamed" in out
    assert stored(ks, "raw_train") == idx_rows(data, "train") and stored(ks, "raw_test") == idx_rows(data, "t10k")
    assert bucket_files(s3_endpoint, f"staging-{writer}") == []  # the job's staging folder is removed


@pytest.mark.parametrize("extra, problem", [
    (["--set", "ingest.writer=sstable"], "the node imports SSTables from a local folder only"),
    (["--set", "ingest.writer=stream", "--set", "storage.s3_endpoint=http://127.0.0.1:{port}"],  # nothing listens
     "storage cannot be reached"),
])
def test_a_staging_url_that_cannot_work_writes_nothing(extra, problem, s3_endpoint, module_keyspace, make_idx_dataset):
    _, ks = module_keyspace
    before = {t: stored(ks, t) for t in ("raw_train", "raw_test")}
    proc = run([SUBMIT, "ingest", "--dataset", "mnist", "--keyspace", ks, "--data-dir",
                str(make_idx_dataset(50, 20, seed=8)), "--set", f"ingest.staging_dir=s3://{BUCKET}/staging",
                "--set", f"storage.s3_endpoint={s3_endpoint}", *[a.format(port=free_port()) for a in extra]], check=False, timeout=300,
               env={**CREDENTIALS, "AWS_EC2_METADATA_DISABLED": "true"})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out[-3000:]
    assert "ingest.staging_dir" in out and problem in out and "nothing was written" in out
    assert "Traceback" not in out
    assert {t: stored(ks, t) for t in ("raw_train", "raw_test")} == before
