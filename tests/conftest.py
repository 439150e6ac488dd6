"""Shared fixtures. Integration tests use the project's own Cassandra node (scripts/cassandra.sh),
real spark-submit with the connector, and real Petastorm, in keyspaces of their own."""
from __future__ import annotations

import contextlib
import gzip
import json
import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"


def write_idx(path: Path, array: np.ndarray, magic: int, gz: bool = True) -> Path:
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    data = header + np.asarray(array, dtype=np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def image_rows(images: np.ndarray, labels: np.ndarray | None, first_id: int = 0):
    """A pandas frame in the raw tables' layout (id, label or None, pixels as 784 bytes) for
    spark.createDataFrame: rows for test snapshots, built here rather than by library code."""
    import pandas as pd

    flat = np.ascontiguousarray(images, dtype=np.uint8).reshape(len(images), -1)
    return pd.DataFrame({"id": np.arange(first_id, first_id + len(flat), dtype=np.int32),
                         "label": pd.array(labels if labels is not None else [None] * len(flat), dtype="Int32"),
                         "pixels": [row.tobytes() for row in flat]})


def write_csv(path: Path, images: np.ndarray, labels: np.ndarray | None = None, gz: bool = False) -> Path:
    """A Kaggle digit-recognizer CSV: label,pixel0..pixel783 (or pixel0..pixel783 when unlabelled)."""
    flat = np.asarray(images).reshape(len(images), -1)
    header = ([] if labels is None else ["label"]) + [f"pixel{i}" for i in range(flat.shape[1])]
    table = flat if labels is None else np.column_stack([labels, flat])
    text = ",".join(header) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in table.tolist())
    path.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
    return path


@pytest.fixture
def make_idx_dataset(tmp_path):
    """A tiny dataset folder in the MNIST layout: images are label-dependent patterns plus noise."""

    def make(n_train=200, n_test=100, gz=True, seed=0):
        rng = np.random.default_rng(seed)
        folder = tmp_path / "tiny"
        folder.mkdir(exist_ok=True)
        ext = ".gz" if gz else ""
        for prefix, n in (("train", n_train), ("t10k", n_test)):
            labels = rng.integers(0, 10, n).astype(np.uint8)
            images = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
            for i, lb in enumerate(labels):
                images[i, 2 * lb:2 * lb + 6, 4:24] = 255
            write_idx(folder / f"{prefix}-images-idx3-ubyte{ext}", images, 2051, gz)
            write_idx(folder / f"{prefix}-labels-idx1-ubyte{ext}", labels, 2049, gz)
        return folder

    return make


def run(cmd: list[str], check: bool = True, timeout: int = 900, env: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        sys.stderr.write(proc.stdout[-5000:] + proc.stderr[-10000:])
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {proc.returncode}")
    return proc


def fake_result(arch: str, seed: int, run_id: str) -> dict:
    """What train_fn returns for a freshly initialised network: real artifacts, made-up metrics."""
    import torch

    from digitforge.registry import artifacts
    from digitforge.training.models import build_model

    torch.manual_seed(seed)
    model = build_model(arch)
    cm = np.eye(10, dtype=int) * 90 + 1
    return {"weights": artifacts.weights_to_bytes(model.state_dict()),
            "optimizer": artifacts.weights_to_bytes({"w": torch.zeros(3)}), "test_accuracy": 0.9, "test_loss": 0.3,
            "train_seconds": 1.0, "run_id": run_id, "epochs": 1,
            "metrics": {"confusion_matrix": cm.tolist(), "history": [{"epoch": 1}], "test_rows": int(cm.sum())}}


def kill_while(cmd: list[str], env: dict, started, kill: list[str], kill_env: dict | None = None,
               timeout: int = 900) -> subprocess.CompletedProcess:
    """Run cmd; as soon as started(its output so far) is true (the job is talking to the node: rows are
    arriving, a split is being read, folders are being streamed), run `kill` (the project's script killing a
    node); return the finished job's result. Fails when the job ended before the trigger fired.
    started() sees stdout and stderr: under spark-submit the Python driver's log lines reach stdout (Spark's
    PythonRunner merges the driver's stderr into it), the JVM's (log4j) reach stderr."""
    import threading
    import time

    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1", **env))
    out: list[str] = []
    err: list[str] = []
    readers = [threading.Thread(target=lambda lines=lines, pipe=pipe: lines.extend(pipe), daemon=True)
               for lines, pipe in ((out, proc.stdout), (err, proc.stderr))]  # never let a pipe fill
    for r in readers:
        r.start()
    killed = False
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if started("".join(out) + "".join(err)):
            run(kill, env=kill_env)
            killed = True
            break
        time.sleep(0.5)
    proc.wait(timeout=timeout)
    for r in readers:
        r.join(timeout=60)
    assert killed, "the job ended before the trigger fired: " + ("".join(out) + "".join(err))[-3000:]
    return subprocess.CompletedProcess(cmd, proc.returncode, "".join(out), "".join(err))


def last_json(stdout: str) -> dict:
    return json.loads([ln for ln in stdout.splitlines() if ln.startswith("{")][-1])


@pytest.fixture(scope="session")
def cassandra_node():
    """The project's local node, started if needed (idempotent)."""
    run([str(ROOT / "scripts" / "cassandra.sh"), "up"], timeout=300)
    return {"host": "127.0.0.1", "port": 9042}


@pytest.fixture(scope="session")
def it_keyspace(cassandra_node):
    """A keyspace of this test run's own (several runs may share one node), dropped at the end."""
    ks = f"it_digits_{os.getpid()}"
    yield ks
    run([str(BIN / "cqlsh"), "127.0.0.1", "--request-timeout", "60", "-e", f"DROP KEYSPACE IF EXISTS {ks}"], check=False)


@pytest.fixture(scope="session")
def it_overrides(it_keyspace, tmp_path_factory):
    """--set flags pointing the `mnist` dataset at the test keyspace and temporary snapshot, report
    and checkpoint folders."""
    snapshots = tmp_path_factory.mktemp("snapshots")
    return ["--set", f"datasets.mnist.keyspace={it_keyspace}", "--set", f"convert.snapshot_root={snapshots}",
            "--set", f"report.root={tmp_path_factory.mktemp('reports')}",
            "--set", f"train.checkpoint_dir={tmp_path_factory.mktemp('checkpoints')}"]


@pytest.fixture(scope="module")
def module_keyspace(cassandra_node, request):
    """(config, keyspace): a keyspace of this module's own (named after it and this run), schema applied,
    dropped when the module ends."""
    from digitforge.core import config
    from digitforge.core.cql import apply_schema

    ks = f"it_{request.module.__name__.rsplit('.', 1)[-1].removeprefix('test_')}_{os.getpid()}"
    cfg = config.resolve()
    apply_schema(cfg, [ks])
    yield cfg, ks
    run([str(BIN / "cqlsh"), "127.0.0.1", "--request-timeout", "60", "-e", f"DROP KEYSPACE IF EXISTS {ks}"], check=False)


@pytest.fixture(scope="module")
def cql(cassandra_node):
    """A driver session for tests (the library's own session factory, on the default config's node), and
    a list of keyspaces to drop when the module ends."""
    from digitforge.core import config
    from digitforge.core.connection import session

    created = []
    with session(config.resolve()) as s:
        yield s, created
        for ks in created:
            s.execute(f"DROP KEYSPACE IF EXISTS {ks}")


MOTO = ROOT / ".venv-s3" / "bin" / "moto_server"
BUCKET = "digitforge-it"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "digitforge-test", "AWS_SECRET_ACCESS_KEY": "digitforge-test"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def standalone_cluster(home: Path, env: dict | None = None):
    """scripts/spark-cluster.sh's master and two 1-core workers on free ports, homed in `home`; stopped (and
    checked stopped) afterwards. env: more of the script's settings (SPARK_HOME, PYSPARK_PYTHON, ...)."""
    env = {"DIGITFORGE_SPARK_CLUSTER_HOME": str(home), "SPARK_MASTER_PORT": str(free_port()),
           "SPARK_MASTER_WEBUI_PORT": str(free_port()), "SPARK_WORKER_WEBUI_PORT": str(free_port())} | (env or {})
    script = lambda action, check=True: run([str(ROOT / "scripts" / "spark-cluster.sh"), action],  # noqa: E731
                                            check=check, timeout=180, env=env)
    try:
        script("up")
        yield {"master": f"spark://127.0.0.1:{env['SPARK_MASTER_PORT']}", "home": home}
    finally:
        script("down", check=False)
    assert script("status", check=False).returncode != 0
    assert not list((home / "pids").glob("*.pid"))


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    """moto's S3 server on a free 127.0.0.1 port with one bucket; the test credentials in this process's
    environment (the jobs this module starts inherit them), as AWS clients expect them."""
    assert MOTO.exists(), "no .venv-s3: run `make s3-env`"
    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "w")
    proc = subprocess.Popen([str(MOTO), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    saved = {k: os.environ.get(k) for k in CREDENTIALS}
    os.environ.update(CREDENTIALS)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "moto_server did not start"
                time.sleep(0.3)
        import pyarrow.fs as pafs

        pafs.S3FileSystem(endpoint_override=f"127.0.0.1:{port}", scheme="http", region="us-east-1",
                          allow_bucket_creation=True).create_dir(BUCKET)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
