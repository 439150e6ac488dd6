"""Issue 13.5 on the ring: one node killed (kill -9, `scripts/ring.sh kill-node 3`) while ingest streams and
while predict writes, at RF 3 / LOCAL_QUORUM: the job completes and the counts, read at LOCAL_QUORUM, are
exact. The killed node is started again at the end of each test (start-node waits until it is UN everywhere),
so the ring tests after these see three UN nodes."""
from __future__ import annotations

import os
import re

import numpy as np
import pytest

from conftest import fake_result, kill_while, last_json, run, write_idx
from test_ring import (ADDRESSES, ENV, HOSTS, RING, SUBMIT, execute_on, ring, ring_cfg, ring_keyspaces,  # noqa: F401 - fixtures
                       wait_for_hints_delivered)

pytestmark = [pytest.mark.ring, pytest.mark.faults]
N_TRAIN, N_TEST = 20000, 2000
KILLED = "3"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ring-drill") / "data"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for prefix, n in (("train", N_TRAIN), ("t10k", N_TEST)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte", rng.integers(0, 255, (n, 28, 28)).astype(np.uint8), 2051, gz=False)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, n).astype(np.uint8), 2049, gz=False)
    return folder


def ingest_cmd(data, ks: str, *flags: str) -> list[str]:
    return [SUBMIT, "ingest", "--data-dir", str(data), "--keyspace", ks, *HOSTS, *flags]


def quorum_count(ks: str, table: str) -> int:
    """count(*) at LOCAL_QUORUM, asked again while the ring settles after the killed node's return."""
    from cassandra import ConsistencyLevel
    from cassandra.query import SimpleStatement

    from digitforge.core import connection

    stmt = SimpleStatement(f"SELECT count(*) FROM {ks}.{table}", consistency_level=ConsistencyLevel.LOCAL_QUORUM)
    with connection.session(ring_cfg()) as s:
        return execute_on(s, stmt).one()[0]


def job_lines(text: str) -> str:
    """A failed job's own log lines (its last 60), then its tail: the connector's reconnect noise about the
    killed node fills the tail alone."""
    own = [ln for ln in text.splitlines() if " digitforge." in ln]
    return "\n".join(own[-60:]) + "\n...\n" + text[-3000:]


def bring_back_killed_node():
    run([RING, "start-node", KILLED], timeout=600)
    wait_for_hints_delivered()


def test_node_killed_mid_stream_ingest_completes_with_exact_counts(ring, ring_keyspaces, data):
    """Killed as soon as every SSTable folder is written (the writer's own log line per folder, 4 per table):
    the streaming job starts then, and streams for seconds (53 MB to 3 replicas at 4 MiB/s: the loader's
    throttle, so that the kill lands mid-stream on any machine; unthrottled it takes well under a second). The streams to the dead replica fail, the live two
    of three satisfy LOCAL_QUORUM, so the rows go again through CQL with a WARNING naming the node and the
    repair; exit 0, counts exact."""
    ks = f"ring_kill_ingest_{os.getpid()}"
    ring_keyspaces.append(ks)
    written = re.compile(r"SparkSSTableWriter: \S+: \d+ rows of ")
    try:
        done = kill_while(ingest_cmd(data, ks, "--set", "ingest.writer=stream", "--set", "ingest.write_partitions=4",
                                     "--set", "ingest.stream_throttle_mib=4"),
                          ENV, lambda log: len(written.findall(log)) == 8, [RING, "kill-node", KILLED])
        text = done.stdout + done.stderr
        assert done.returncode == 0, job_lines(text)
        assert "Traceback" not in text
        warnings = [ln for ln in text.splitlines() if " WARNING " in ln and "mid-stream" in ln]
        assert len(warnings) == 1 and ADDRESSES[2] in warnings[0] and "nodetool repair" in warnings[0], job_lines(text)
        summary = last_json(done.stdout)
        assert {t["table"].split(".")[-1]: t["found"] for t in summary["tables"]} == {"raw_train": N_TRAIN,
                                                                                     "raw_test": N_TEST}
        assert quorum_count(ks, "raw_train") == N_TRAIN and quorum_count(ks, "raw_test") == N_TEST
    finally:
        bring_back_killed_node()
    assert quorum_count(ks, "raw_train") == N_TRAIN and quorum_count(ks, "raw_test") == N_TEST


def test_node_killed_mid_predict_completes_with_exact_counts(ring, ring_keyspaces, data):
    """Killed once the first predictions are in (the connector writes them after predicting every row): the
    connector's writes go on at LOCAL_QUORUM on the two live replicas; exit 0, one prediction per row."""
    from digitforge.core import config, connection
    from digitforge.registry import write as registry_write

    ks = f"ring_kill_predict_{os.getpid()}"
    ring_keyspaces.append(ks)
    run(ingest_cmd(data, ks), env=ENV)
    cfg = ring_cfg("--set", f"datasets.mnist.keyspace={ks}")
    model_id = registry_write.register(cfg, "mnist", fake_result("net", 0, "ring-drill"),
                                       config.apply_overrides(cfg, ["train.architecture=net"]), {"run_id": "ring-drill"})
    cmd = [SUBMIT, "predict", "--keyspace", ks, "--model", str(model_id), "--table", "raw_train", *HOSTS]
    try:
        with connection.session(cfg, ks) as s:  # one session for the trigger: a poll costs milliseconds
            def predictions_arriving(_log: str) -> bool:
                try:
                    return s.execute("SELECT id FROM predictions LIMIT 1").one() is not None
                except Exception:  # noqa: BLE001 - not yet
                    return False

            done = kill_while(cmd, ENV, predictions_arriving, [RING, "kill-node", KILLED])
        text = done.stdout + done.stderr
        assert done.returncode == 0, job_lines(text)
        assert "Traceback" not in text
        summary = last_json(done.stdout)
        assert summary["rows_read"] == summary["rows_written"] == N_TRAIN
        assert quorum_count(ks, "predictions") == N_TRAIN
    finally:
        bring_back_killed_node()
    assert quorum_count(ks, "predictions") == N_TRAIN
