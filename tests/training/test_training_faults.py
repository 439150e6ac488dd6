"""Fault drills for training (real spark-submit, TorchDistributor, the real node): a rank SIGKILLed in
the middle of epoch 2 of 3 and the run resumes from its checkpoint by itself; a registration that keeps
failing (the keyspace asks for 2 replicas on this single node) exits 3 naming the run, and
`digitforge registry register RUN_ID` registers it from its checkpoint, once."""
import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from conftest import BIN, ROOT, image_rows, last_json, run

pytestmark = [pytest.mark.integration, pytest.mark.faults]
SUBMIT = str(ROOT / "scripts" / "submit.sh")
REPLICATION = "{'class': 'NetworkTopologyStrategy', 'datacenter1': %d}"


@pytest.fixture(scope="module")
def env(cassandra_node, tmp_path_factory):
    """A keyspace of its own and a snapshot of synthetic rows (a bright band's position is the label)."""
    from digitforge.core import config
    from digitforge.core.cql import apply_schema
    from digitforge.core.spark import get_spark
    from digitforge.snapshot import write as snapshot

    ks = f"it_trainfault_{os.getpid()}"
    apply_schema(config.resolve([f"datasets.mnist.keyspace={ks}"]), [ks])
    os.environ.setdefault("PYSPARK_PYTHON", str(BIN / "python"))
    root = tmp_path_factory.mktemp("fault-snapshots")
    rng = np.random.default_rng(0)
    spark = get_spark("digitforge-test-fault-snapshot")
    try:
        splits = {}
        for split, n in (("train", 2000), ("test", 400)):
            labels = rng.integers(0, 10, n)
            images = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
            for i, lb in enumerate(labels):
                images[i, 2 * lb:2 * lb + 6, 4:24] = 255
            splits[split] = spark.createDataFrame(image_rows(images, labels), "id int, label int, pixels binary")
        snapshot.write_snapshot(spark, splits, root, "mnist", source={"keyspace": ks, "test": True}, files_per_split=4)
    finally:
        spark.stop()
    yield {"ks": ks, "snapshots": root, "tmp": tmp_path_factory.mktemp("fault-train")}
    run([str(BIN / "cqlsh"), "127.0.0.1", "--request-timeout", "60", "-e", f"DROP KEYSPACE IF EXISTS {ks}"], check=False)


def overrides(env, checkpoints: Path) -> list[str]:
    return ["--set", f"datasets.mnist.keyspace={env['ks']}", "--set", f"convert.snapshot_root={env['snapshots']}",
            "--set", f"train.checkpoint_dir={checkpoints}", "--set", "report.enabled=false"]


def cql(statement: str):
    from digitforge.core import config
    from digitforge.core.connection import session

    with session(config.resolve()) as s:
        return list(s.execute(statement))


def descendants(root_pid: int) -> list[int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    found, frontier = [], [root_pid]
    while frontier:
        pid = frontier.pop()
        children = [c for c, p in parents.items() if p == pid]
        found += children
        frontier += children
    return found


def rank_process(root_pid: int, rank: int) -> int | None:
    """The pid of a torchrun child (a DDP rank) under the job: its environment names its rank."""
    for pid in descendants(root_pid):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in environ and f"LOCAL_RANK={rank}".encode() in environ:
            return pid
    return None


def test_a_rank_killed_in_epoch_2_of_3_resumes_from_its_checkpoint_and_registers_one_model(env):
    checkpoints = env["tmp"] / "restart"
    cmd = [SUBMIT, "train", "--dataset", "mnist", "--architecture", "net", "--epochs", "3", "--batch-size", "8",
           *overrides(env, checkpoints)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    killed = None
    try:
        deadline = time.time() + 600
        while killed is None and proc.poll() is None and time.time() < deadline:
            latest = list(checkpoints.glob("*/latest"))
            if latest and latest[0].read_text().strip() == "epoch-0001":  # epoch 1 is saved: epoch 2 runs
                pid = rank_process(proc.pid, 1)
                if pid:
                    os.kill(pid, signal.SIGKILL)
                    killed = pid
            time.sleep(0.1)
        output, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert killed, output[-3000:]
    assert proc.returncode == 0, output[-5000:]
    model = last_json(output)
    assert "restart 1 of 2 from its epoch" in output
    row = cql(f"SELECT metrics, lineage FROM {env['ks']}.models WHERE id = {uuid.UUID(model['id'])}")[0]
    metrics = json.loads(row.metrics)
    assert [h["epoch"] for h in metrics["history"]] == [1, 2, 3]
    assert len(metrics["restarts"]) == 1 and metrics["restarts"][0]["after_epoch"] >= 1
    assert metrics["resumed_from_epoch"] == metrics["restarts"][0]["after_epoch"]
    runs = [r for r in cql(f"SELECT lineage FROM {env['ks']}.models") if model["run_id"] in (r.lineage or "")]
    assert len(runs) == 1  # one model for the run


def test_a_registration_that_keeps_failing_exits_3_and_the_run_is_registered_later(env):
    checkpoints = env["tmp"] / "register"
    flags = overrides(env, checkpoints)
    cql(f"ALTER KEYSPACE {env['ks']} WITH replication = {REPLICATION % 2}")  # 2 replicas asked of 1 node
    try:
        proc = run([SUBMIT, "train", "--dataset", "mnist", "--architecture", "mlp", "--epochs", "1",
                    "--set", "registry.retry_attempts=3", "--set", "registry.retry_backoff_s=0.1", *flags], check=False)
    finally:
        cql(f"ALTER KEYSPACE {env['ks']} WITH replication = {REPLICATION % 1}")
    output = proc.stdout + proc.stderr
    run_id = next(checkpoints.iterdir()).name
    assert proc.returncode == 3, output[-5000:]
    assert f"of run {run_id} not registered" in output and "Unavailable" in output
    assert f"its checkpoint is kept: digitforge registry register {run_id}" in output
    assert "retry 2 of 2" in output and "Traceback" not in output
    assert not [r for r in cql(f"SELECT lineage FROM {env['ks']}.models") if run_id in (r.lineage or "")]

    cli = [str(BIN / "digitforge"), *flags, "registry", "register", run_id, "--json"]
    first = json.loads(run(cli).stdout)
    assert first["registered"] is True and first["run_id"] == run_id
    again = json.loads(run(cli).stdout)
    assert again == dict(first, registered=False)
    row = cql(f"SELECT metrics, lineage, test_accuracy FROM {env['ks']}.models WHERE id = {uuid.UUID(first['id'])}")[0]
    assert [h["epoch"] for h in json.loads(row.metrics)["history"]] == [1]
    assert json.loads(row.lineage)["run_id"] == run_id
    assert len([r for r in cql(f"SELECT lineage FROM {env['ks']}.models") if run_id in (r.lineage or "")]) == 1
