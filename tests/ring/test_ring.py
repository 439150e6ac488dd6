"""On the 3-node ring (scripts/ring.sh), tests marked `ring`: `make test-ring` starts it (the single node
must be down: they share 127.0.0.1's ports). Its addresses come from RING_ADDRESSES, as for the script
(default 127.0.0.1-3), so a developer can run a ring beside the shared single node at other loopback addresses
(RING_ADDRESSES="127.0.1.1 127.0.1.2 127.0.1.3" RING_JMX_PORTS="7211 7212 7213"). Jobs run with the
profile switch (DIGITFORGE_CASSANDRA=ring) plus the ring's addresses."""
from __future__ import annotations

import os
import subprocess

import pytest

from conftest import BIN, ROOT, last_json, run
from digitforge.core import config

ADDRESSES = os.environ.get("RING_ADDRESSES", "127.0.0.1 127.0.0.2 127.0.0.3").split()
RING = str(ROOT / "scripts" / "ring.sh")
SUBMIT = str(ROOT / "scripts" / "submit.sh")
ENV = {"DIGITFORGE_CASSANDRA": "ring"}
HOSTS = ["--set", f"cassandra.hosts=[{','.join(ADDRESSES)}]"]


def ring_cfg(*overrides: str) -> dict:
    """The ring's resolved config (overlay conf/clusters/ring.yaml, these addresses, then overrides)."""
    os.environ.update(ENV)
    return config.resolve([o for o in [*HOSTS, *overrides] if o != "--set"])


def job(name: str, *flags: str, check: bool = True, timeout: int = 900):
    return run([SUBMIT, name, *HOSTS, *flags], check=check, timeout=timeout, env=ENV)


def cli(*flags: str, check: bool = True):
    return run([str(BIN / "digitforge"), *HOSTS, *flags], check=check, env=ENV)


@pytest.fixture(scope="session")
def ring():
    """The ring, started by the project's script if it is not up (idempotent), every node UN."""
    run([RING, "up"], timeout=600)
    return ADDRESSES


@pytest.fixture(scope="session")
def ring_keyspaces(ring):
    """Keyspaces the ring tests create (each test adds its own), dropped at the end of the session. The last drill
    has just brought a killed node back: a drop can then hang on a connection the driver has not yet found dead
    (a missed heartbeat), so each is asked again after 30 s rather than waited on for 120 s."""
    from digitforge.core import connection

    created: list[str] = []
    yield created
    with connection.session(ring_cfg()) as s:
        for ks in created:
            execute_on(s, f"DROP KEYSPACE IF EXISTS {ks}", pause_s=1, timeout=30)


def counts_on_every_node(s, keyspace: str, table: str) -> dict[str, int]:
    """count(*) of keyspace.table, coordinated by each node in turn, at LOCAL_QUORUM and at ONE."""
    from cassandra import ConsistencyLevel
    from cassandra.query import SimpleStatement

    out = {}
    for h in sorted(s.cluster.metadata.all_hosts(), key=lambda h: str(h.endpoint.address)):
        for cl in ("LOCAL_QUORUM", "ONE"):
            stmt = SimpleStatement(f"SELECT count(*) FROM {keyspace}.{table}",
                                   consistency_level=ConsistencyLevel.name_to_value[cl])
            out[f"{h.endpoint.address} {cl}"] = execute_on(s, stmt, h).one()[0]
    return out


def execute_on(s, stmt, host=None, attempts: int = 6, pause_s: float = 10, timeout: float = 120):
    """stmt (coordinated by host, when given), asked again when it fails for time or availability. On 2 busy
    cores (a ring just after streaming, compaction, or a killed node's return with hints replaying) a read can
    time out with no replica answering, and the driver can mark a node down for a missed heartbeat while the
    node itself is UN, refusing host-targeted requests until it has reconnected: wait for that instead of
    failing the count."""
    import time

    from cassandra import OperationTimedOut, ReadFailure, ReadTimeout, Unavailable
    from cassandra.cluster import NoHostAvailable

    for attempt in range(attempts):
        try:
            return s.execute(stmt, host=host, timeout=timeout)
        except (NoHostAvailable, OperationTimedOut, ReadFailure, ReadTimeout, Unavailable):
            if attempt == attempts - 1:
                raise
            if host is not None and not host.is_up:
                s.cluster.on_up(host)  # reconnect now rather than after the driver's back-off
            time.sleep(pause_s)


def wait_for_hints_delivered(timeout_s: float = 300):
    """Until no node holds hints (writes kept for a node that was down), after a node's return. A keyspace
    dropped while its hints still replay into the returning node can break that node's schema for good
    (Cassandra 5.0: the drop's commit-log recycle meets the hinted table's id, "Unknown CF", and the node
    stops applying schema changes), so no test ends while hints are pending."""
    import time

    deadline = time.monotonic() + timeout_s
    for n in range(1, len(ADDRESSES) + 1):
        while "does not have any pending hints" not in run([RING, "nodetool", str(n), "listpendinghints"]).stdout:
            assert time.monotonic() < deadline, f"node{n} still holds hints after {timeout_s:.0f}s"
            time.sleep(2)


pytestmark = pytest.mark.ring
N = 2000


@pytest.fixture(scope="module")
def pipeline(ring, ring_keyspaces, tmp_path_factory):
    """Every job on the ring at RF 3, from the usual commands plus the profile switch."""
    ks = f"ring_digits_{os.getpid()}"
    ring_keyspaces.append(ks)
    tmp = tmp_path_factory.mktemp("ring")
    overrides = ["--set", f"datasets.mnist.keyspace={ks}", "--set", f"convert.snapshot_root={tmp / 'snapshots'}",
                 "--set", f"report.root={tmp / 'reports'}", "--set", f"train.checkpoint_dir={tmp / 'checkpoints'}"]
    cli(*overrides, "schema", "apply")
    ingest = job("ingest", "--dataset", "mnist", "--limit", str(N), *overrides)
    convert = last_json(job("convert", "--dataset", "mnist", *overrides).stdout)
    model = last_json(job("train", "--dataset", "mnist", "--epochs", "2", *overrides).stdout)
    predict = job("predict", "--dataset", "mnist", "--model", model["id"], "--table", "raw_test", *overrides)
    retrain = job("retrain", "--dataset", "mnist", "--set", "train.epochs=1", *overrides, check=False)
    return {"ks": ks, "overrides": overrides, "ingest": ingest, "convert": convert, "model": model,
            "predict": predict, "retrain": retrain, "cfg": ring_cfg(*overrides)}


def test_keyspace_replicates_three_times_in_the_configured_datacenter(pipeline):
    from digitforge.core import connection
    from digitforge.core import replication as keyspaces

    with connection.session(pipeline["cfg"]) as s:
        assert keyspaces.current(s, pipeline["ks"]) == {"class": "NetworkTopologyStrategy", "datacenter1": "3"}
        assert connection.nodes_in_local_dc(s.cluster, pipeline["cfg"]) == 3


def test_ingest_streams_and_counts_are_exact_on_every_node(pipeline):
    from digitforge.core import connection

    out = pipeline["ingest"].stdout + pipeline["ingest"].stderr
    assert "streaming SSTables to every replica" in out and "not sstable: the cluster has 3 nodes" in out
    assert all(t["writer"] == "stream" for t in last_json(pipeline["ingest"].stdout)["tables"])
    with connection.session(pipeline["cfg"]) as s:
        for table in ("raw_train", "raw_test"):
            counts = counts_on_every_node(s, pipeline["ks"], table)
            assert len(counts) == 6 and set(counts.values()) == {N}, counts


def test_convert_train_predict_retrain_run_on_the_ring(pipeline):
    assert pipeline["convert"]["rows"] == {"train": N, "test": N}
    assert pipeline["model"]["test_accuracy"] > 0.5
    assert "accuracy" in (pipeline["predict"].stdout + pipeline["predict"].stderr)
    retrain = pipeline["retrain"]
    assert retrain.returncode == 0, retrain.stdout[-3000:] + retrain.stderr[-3000:]
    from digitforge.core import connection

    with connection.session(pipeline["cfg"], pipeline["ks"]) as s:
        counts = counts_on_every_node(s, pipeline["ks"], "predictions")
        assert set(counts.values()) == {N}, counts
        assert s.execute("SELECT count(*) FROM retrain_runs").one()[0] == 1


def test_driver_and_connector_use_the_configured_consistency(pipeline):
    from cassandra import ConsistencyLevel

    from digitforge.core import connection

    with connection.session(pipeline["cfg"]) as s:
        default = s.cluster.profile_manager.default
        assert default.consistency_level == ConsistencyLevel.LOCAL_QUORUM
        assert default.serial_consistency_level == ConsistencyLevel.LOCAL_SERIAL
    from digitforge.core.spark import cassandra_table, get_spark

    spark = get_spark("digitforge-test-ring-conf", pipeline["cfg"])
    try:  # the session the jobs get: the ring's hosts and DC, LOCAL_QUORUM both ways, and it reads the ring
        conf = spark.sparkContext.getConf()
        assert conf.get("spark.cassandra.input.consistency.level") == "LOCAL_QUORUM"
        assert conf.get("spark.cassandra.output.consistency.level") == "LOCAL_QUORUM"
        assert conf.get("spark.cassandra.connection.host") == ",".join(ADDRESSES)
        assert conf.get("spark.cassandra.connection.localDC") == "datacenter1"
        assert cassandra_table(spark, pipeline["ks"], "raw_test").count() == N
    finally:
        spark.stop()


def rows_of(s, ks: str, table: str) -> set:
    return {(r.id, r.label, bytes(r.pixels)) for r in s.execute(f"SELECT id, label, pixels FROM {ks}.{table}",
                                                                 timeout=120)}


def test_stream_and_cql_writers_give_identical_rows(pipeline, ring_keyspaces):
    from digitforge.core import connection

    ks = {w: f"ring_{w}_{os.getpid()}" for w in ("stream", "cql")}
    for writer, name in ks.items():
        ring_keyspaces.append(name)
        out = job("ingest", "--dataset", "mnist", "--limit", "500", "--keyspace", name,
                  "--set", f"ingest.writer={writer}")
        assert {t["writer"] for t in last_json(out.stdout)["tables"]} == {writer}
    with connection.session(pipeline["cfg"]) as s:
        for table in ("raw_train", "raw_test"):
            a, b = rows_of(s, ks["stream"], table), rows_of(s, ks["cql"], table)
            assert len(a) == 500 and a == b


def test_rf3_refuses_nothing_at_local_quorum_with_one_node_stopped(pipeline):
    """One node down: reads and writes at LOCAL_QUORUM go on, auto falls back to CQL (the loader needs every
    replica), counts stay exact; with a second node down LOCAL_QUORUM is refused (it is in effect, not ONE)."""
    from cassandra import ConsistencyLevel
    from cassandra.query import SimpleStatement

    from digitforge.core import connection

    ks, overrides = pipeline["ks"], pipeline["overrides"]
    run([RING, "stop-node", "3"], timeout=300)
    try:
        out = job("ingest", "--dataset", "mnist", "--limit", str(N), *overrides)
        text = out.stdout + out.stderr
        assert "not stream: the storage port" in text and ADDRESSES[2] in text
        assert {t["writer"] for t in last_json(out.stdout)["tables"]} == {"cql"}
        cli(*overrides, "registry", "best", "--dataset", "mnist", "--json")
        with connection.session(pipeline["cfg"], ks) as s:
            assert s.execute("SELECT count(*) FROM raw_train", timeout=120).one()[0] == N
            s.execute("INSERT INTO raw_predict (id, label, pixels) VALUES (1, 1, 0x00)")
            run([RING, "stop-node", "2"], timeout=300)
            with pytest.raises(Exception) as refused:
                s.execute("SELECT count(*) FROM raw_train", timeout=60)
            assert isinstance(connection.translate(refused.value, pipeline["cfg"]), connection.CassandraUnavailable)
            one = SimpleStatement("SELECT count(*) FROM raw_train", consistency_level=ConsistencyLevel.ONE)
            assert s.execute(one, timeout=120).one()[0] == N
    finally:  # both come back whatever happened above; either failing to come back fails the test
        # Together: each start-node waits until every node is UN, so one at a time would wait on the other.
        starting = [subprocess.Popen([RING, "start-node", n], cwd=ROOT, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True) for n in ("2", "3")]
        outputs = [p.communicate(timeout=600)[0] for p in starting]
        assert all(p.returncode == 0 for p in starting), [o[-2000:] for o in outputs]
        wait_for_hints_delivered()
    with connection.session(pipeline["cfg"], ks) as s:
        s.execute("DELETE FROM raw_predict WHERE id = 1")


@pytest.mark.parametrize("setting, value, message", [
    ("cassandra.hosts", "[127.0.0.99]", "cassandra.hosts=127.0.0.99"),
    ("cassandra.local_dc", "nowhere", "cassandra.local_dc='nowhere'"),
    ("cassandra.replication_factor", "4", "cassandra.replication_factor=4"),
])
def test_bad_cluster_settings_exit_2_naming_the_setting_and_write_nothing(ring, setting, value, message):
    from digitforge.core import connection
    from digitforge.core import replication as keyspaces

    ks = f"ring_bad_{os.getpid()}"
    for command in (["ingest", "--dataset", "mnist", "--limit", "100", "--keyspace", ks],):
        proc = job(*command, "--set", f"{setting}={value}", check=False)
        assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-3000:]
        assert message in proc.stdout + proc.stderr
    proc = cli("--set", f"datasets.mnist.keyspace={ks}", "--set", f"{setting}={value}", "schema", "apply", check=False)
    assert proc.returncode == 2 and message in proc.stdout + proc.stderr
    with connection.session(ring_cfg()) as s:
        assert keyspaces.current(s, ks) is None


def test_schema_apply_names_the_alter_for_a_keyspace_that_replicates_otherwise(ring, ring_keyspaces):
    from digitforge.core import connection
    from digitforge.core import replication as keyspaces

    ks = f"ring_rf1_{os.getpid()}"
    ring_keyspaces.append(ks)
    with connection.session(ring_cfg()) as s:
        s.execute(f"CREATE KEYSPACE {ks} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}")
    proc = cli("--set", f"datasets.mnist.keyspace={ks}", "schema", "apply")
    out = proc.stdout + proc.stderr
    assert f"ALTER KEYSPACE {ks} WITH replication = {{'class': 'NetworkTopologyStrategy', 'datacenter1': 3}};" in out
    with connection.session(ring_cfg()) as s:  # told, not changed
        assert keyspaces.current(s, ks) == {"class": "SimpleStrategy", "replication_factor": "1"}
