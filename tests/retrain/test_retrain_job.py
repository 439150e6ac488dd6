"""The retrain job end to end (spark-submit, the real node, Petastorm, TorchDistributor) on a tiny
synthetic dataset in a keyspace of this run's own: a better challenger is promoted, a worse one is
not, an overlapping run is refused, and a crashed run's lease expires so the next run goes ahead."""
import json
import os
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from conftest import BIN, ROOT, last_json, run
from digitforge.core import config
from digitforge.core.connection import session
from digitforge.core.cql import apply_schema
from digitforge.registry import aliases as registry_aliases
from digitforge.registry import artifacts
from digitforge.registry import read as registry_read
from digitforge.registry import write as registry_write
from digitforge.retrain import records
from digitforge.retrain.lease import Lease, LeaseStore
from digitforge.training.models import build_model

pytestmark = pytest.mark.integration
SUBMIT = str(ROOT / "scripts" / "submit.sh")


def synthetic(n, seed):
    """Images whose label is a bright band's position: learnt to ~100% in a few epochs."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
    for i, lb in enumerate(labels):
        images[i, 2 * lb:2 * lb + 6, 4:24] = 255
    return labels, images


@pytest.fixture(scope="module")
def env(cassandra_node, tmp_path_factory):
    ks = f"it_retrain_{os.getpid()}"
    tmp = tmp_path_factory.mktemp("retrain")
    overrides = ["--set", f"datasets.mnist.keyspace={ks}", "--set", f"convert.snapshot_root={tmp / 'snapshots'}",
                 "--set", "convert.files_per_split=2", "--set", f"report.root={tmp / 'reports'}",
                 "--set", f"train.checkpoint_dir={tmp / 'checkpoints'}"]
    cfg = config.resolve([o for o in overrides if o != "--set"])
    apply_schema(cfg, [ks])
    with session(cfg, ks) as s:
        for table, (n, seed) in (("raw_train", (400, 0)), ("raw_test", (200, 1))):
            insert = s.prepare(f"INSERT INTO {table} (id, label, pixels) VALUES (?, ?, ?)")
            for i, (label, image) in enumerate(zip(*synthetic(n, seed))):
                s.execute(insert, (i, int(label), image.tobytes()))
    yield {"cfg": cfg, "ks": ks, "overrides": overrides, "tmp": tmp}
    run([str(BIN / "cqlsh"), "127.0.0.1", "--request-timeout", "60", "-e", f"DROP KEYSPACE IF EXISTS {ks}"], check=False)


def retrain_job(env, *flags, check=True):
    return run([SUBMIT, "retrain", "--dataset", "mnist", *env["overrides"], *flags], check=check, timeout=600)


def register_untrained_champion(env) -> str:
    """A champion that never learnt (random weights, chance accuracy), registered and promoted, with
    a stored config that trains well: the challenger trains with it and must win."""
    cfg = config.resolve(["train.epochs=8", "train.lr=0.01"])
    result = {"weights": artifacts.weights_to_bytes(build_model("net").state_dict()), "test_accuracy": 0.1,
              "test_loss": 2.3, "train_seconds": 0.0, "metrics": {"history": []}}
    model_id = str(registry_write.register(env["cfg"], "mnist", result, cfg, {"note": "untrained, for the test"}, "untrained"))
    registry_aliases.promote(env["cfg"], "mnist", model_id, reason="test setup: an untrained champion")
    return model_id


@pytest.fixture(scope="module")
def better(env):
    untrained = register_untrained_champion(env)
    return untrained, last_json(retrain_job(env).stdout)


def test_a_better_challenger_is_promoted(env, better):
    untrained, out = better
    assert out["promoted"] is True
    assert out["champion"]["id"] == untrained and out["challenger"]["accuracy"] > out["champion"]["accuracy"] + 0.3
    assert out["champion"]["rows"] == out["challenger"]["rows"] == 200  # the same test rows for both
    assert registry_read.show(env["cfg"], "mnist", "champion")["id"] == out["challenger"]["id"]
    history = next(a for a in registry_aliases.list_aliases(env["cfg"], "mnist") if a["alias"] == "champion")["history"]
    assert history[0]["from"] == untrained and history[0]["to"] == out["challenger"]["id"]
    assert "better by at least the margin" in history[0]["reason"] and "accuracy" in history[0]["reason"]
    # it trained with the champion's stored config
    assert registry_read.show(env["cfg"], "mnist", out["challenger"]["id"])["config"]["train"]["epochs"] == 8


def test_the_run_writes_a_report_and_a_comparison(better):
    _, out = better
    assert set(out["reports"]) == {"challenger", "comparison"}
    for page in map(Path, out["reports"].values()):
        images = re.findall(r"<img src='([^']+)'", page.read_text())
        assert len(images) >= 5
        for name in images:
            assert (page.parent / name).read_bytes()[:4] == b"\x89PNG" and (page.parent / name).stat().st_size > 1000


def test_an_overlapping_run_is_refused_and_changes_nothing(env, better):
    before = len(registry_read.list_models(env["cfg"], "mnist"))
    snapshots = sorted((env["tmp"] / "snapshots" / env["ks"] / "mnist").iterdir())
    with Lease(env["cfg"], env["ks"], "retrain", ttl_s=120) as held:
        proc = retrain_job(env, check=False)
    assert proc.returncode == 3
    assert f"held by {held.owner}" in proc.stdout + proc.stderr and "another run is in progress" in proc.stdout + proc.stderr
    assert len(registry_read.list_models(env["cfg"], "mnist")) == before
    assert sorted((env["tmp"] / "snapshots" / env["ks"] / "mnist").iterdir()) == snapshots


def test_a_crashed_run_does_not_block_the_next_and_a_worse_challenger_is_not_promoted(env, better):
    _, promoted = better
    champion = promoted["challenger"]["id"]
    # A run that dies (kill -9) while holding its lease: it never releases it.
    cmd = [SUBMIT, "retrain", "--dataset", "mnist", *env["overrides"], "--set", "retrain.lease_ttl_s=3"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        for line in proc.stdout:
            if "lease" in line and "taken by" in line:
                break
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    with session(env["cfg"]) as s:
        store = LeaseStore(s, env["ks"])
        assert store.holder("retrain") is not None  # left behind by the crashed run
        deadline = time.time() + 60
        while store.holder("retrain") is not None and time.time() < deadline:
            time.sleep(0.5)
        assert store.holder("retrain") is None  # expired by its TTL
    # The next night's run goes ahead. Its challenger never learns (lr 0): it is not promoted.
    out = last_json(retrain_job(env, "--set", "train.lr=0", "--set", "train.epochs=1", "--set", "report.enabled=false").stdout)
    assert out["promoted"] is False and out["champion"]["id"] == champion
    assert out["challenger"]["accuracy"] < out["champion"]["accuracy"]
    assert "not better: champion kept" in out["reason"]
    assert registry_read.show(env["cfg"], "mnist", "champion")["id"] == champion
    runs = records.runs(env["cfg"], env["ks"], "mnist")
    assert [r["promoted"] for r in runs[:2]] == [False, True]  # newest first
    assert runs[0]["champion_accuracy"] == out["champion"]["accuracy"]
    assert runs[0]["challenger_accuracy"] == out["challenger"]["accuracy"]
    cli = json.loads(run([str(BIN / "digitforge"), *env["overrides"], "retrain", "runs", "--dataset", "mnist", "--json"]).stdout)
    assert cli[0]["reason"] == out["reason"]
    assert str(uuid.UUID(cli[0]["challenger_id"])) == out["challenger"]["id"]


def test_report_command_for_a_model_and_for_two_side_by_side(env, better):
    untrained, out = better
    single = env["tmp"] / "cli-report"
    page = Path(run([str(BIN / "digitforge"), *env["overrides"], "report", "champion", "--out", str(single)]).stdout.strip())
    assert page == single / "index.html" and out["challenger"]["id"] in page.read_text()
    assert all((single / f"{c}.png").stat().st_size > 1000 for c in ("curves", "confusion", "filters", "misclassified", "balance"))
    both = json.loads(run([str(BIN / "digitforge"), *env["overrides"], "report", "--compare", untrained, "mnist:champion",
                           "--json"]).stdout)
    text = Path(both["report"]).read_text()
    assert "B is " in text and "points more accurate" in text and "per_class_f1.png" in text
