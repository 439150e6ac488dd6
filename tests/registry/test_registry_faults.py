"""Fault drills for the registry against the real node: every write of register() failed by a statement
the node rejects for real (a column of that table dropped in this test's keyspace) leaves nothing
half-written; a transient failure (too few replicas: the keyspace asks for 2 on this single node) is
retried until it heals, and gives exactly one model; fsck finds and repairs what a killed driver leaves."""
import logging
import os
import uuid

import pytest

from conftest import BIN, fake_result, run
from digitforge.core import config
from digitforge.core.connection import session
from digitforge.core.cql import apply_schema
from digitforge.registry import fsck
from digitforge.registry import write as registry_write

pytestmark = [pytest.mark.integration, pytest.mark.faults]


@pytest.fixture(scope="module")
def reg(cassandra_node):
    ks = f"it_regfault_{os.getpid()}"
    overrides = [f"datasets.mnist.keyspace={ks}", "registry.chunk_bytes=16384", "registry.retry_backoff_s=0.05"]
    cfg = config.resolve(overrides)
    apply_schema(cfg, [ks])
    yield {"ks": ks, "cfg": cfg, "set": [a for o in overrides for a in ("--set", o)]}
    run([str(BIN / "cqlsh"), "127.0.0.1", "--request-timeout", "60", "-e", f"DROP KEYSPACE IF EXISTS {ks}"], check=False)


def register(reg, run_id: str, seed: int = 0):
    result = fake_result("net", seed, run_id)
    conf = config.apply_overrides(reg["cfg"], ["train.architecture=net"])
    return registry_write.register(reg["cfg"], "mnist", result, conf, {"run_id": run_id}), result


def rows_of(reg, model_id) -> dict:
    with session(reg["cfg"], reg["ks"]) as s:
        return {
            "models": s.execute("SELECT id FROM models WHERE id = %s", (model_id,)).one() is not None,
            "chunks": [r.artifact for r in s.execute("SELECT DISTINCT model_id, artifact FROM model_chunks")
                       if r.model_id == model_id],
            "classes": len(list(s.execute("SELECT class FROM model_classes WHERE model_id = %s", (model_id,)))),
            "by_date": [r.id for r in s.execute("SELECT id FROM models_by_date WHERE dataset = 'mnist'")
                        if r.id == model_id]}


NOTHING = {"models": False, "chunks": [], "classes": 0, "by_date": []}


@pytest.mark.parametrize("table, column, ctype, step", [
    ("model_chunks", "sha256", "text", "chunks"),       # the first write: an artifact's chunks
    ("models", "lineage", "text", "the models row"),    # the commit point, after every chunk is in
    ("model_classes", "support", "int", "the derived rows"),  # the derived rows' logged batch
])
def test_a_write_the_node_rejects_leaves_nothing_half_written(reg, table, column, ctype, step):
    run_id = f"rejected-{table}"
    with session(reg["cfg"], reg["ks"]) as s:
        s.execute(f"ALTER TABLE {table} DROP {column}")
    try:
        with pytest.raises(registry_write.RegistrationFailed, match=rf"of run {run_id} not registered.*writing {step} "
                           rf"failed .*InvalidRequest.*digitforge registry register {run_id}"):
            register(reg, run_id)
    finally:
        with session(reg["cfg"], reg["ks"]) as s:
            s.execute(f"ALTER TABLE {table} ADD {column} {ctype}")
    model_id = registry_write.model_id_for(run_id, fake_result("net", 0, run_id)["weights"])
    assert rows_of(reg, model_id) == NOTHING
    report = fsck.check(reg["cfg"], "mnist", grace_s=0)
    assert report["orphan_chunks"] == [] and report["orphan_derived"] == [] and report["clean"]


def test_a_transient_failure_is_retried_until_it_heals_and_gives_one_model(reg, caplog):
    ks = reg["ks"]
    replication = "{'class': 'NetworkTopologyStrategy', 'datacenter1': %d}"
    with session(reg["cfg"]) as s:
        s.execute(f"ALTER KEYSPACE {ks} WITH replication = {replication % 2}")  # 2 replicas asked, 1 node

        class HealAtFirstRetry(logging.Handler):  # the node "comes back" when register() says it retries
            def emit(self, record):
                if "retry 1 of" in record.getMessage() and not hasattr(self, "healed"):
                    self.healed = record.getMessage()
                    s.execute(f"ALTER KEYSPACE {ks} WITH replication = {replication % 1}")

        heal = HealAtFirstRetry()
        logging.getLogger("digitforge.core.retrying").addHandler(heal)
        try:
            model_id, _ = register(reg, "transient")
        finally:
            logging.getLogger("digitforge.core.retrying").removeHandler(heal)
            s.execute(f"ALTER KEYSPACE {ks} WITH replication = {replication % 1}")
    assert "Unavailable" in heal.healed
    assert rows_of(reg, model_id) == {"models": True, "chunks": ["network"], "classes": 10, "by_date": [model_id]}
    # the same run registered again: the same id, the same rows, still one model
    again, _ = register(reg, "transient")
    assert again == model_id
    with session(reg["cfg"], ks) as s:
        assert sum(1 for r in s.execute("SELECT lineage FROM models") if '"transient"' in r.lineage) == 1


def test_fsck_finds_and_repairs_what_a_killed_registration_leaves(reg):
    cfg, ks = reg["cfg"], reg["ks"]
    good, _ = register(reg, "fsck-good", seed=3)
    corrupt, _ = register(reg, "fsck-corrupt", seed=4)
    orphan = uuid.uuid4()
    with session(cfg, ks) as s:  # what a driver killed after its chunks and part of its derived rows leaves
        s.execute("INSERT INTO model_chunks (model_id, artifact, seq, data, sha256) VALUES (%s, 'network', 0, %s, 'x')",
                  (orphan, b"\x00" * 10))
        s.execute("INSERT INTO model_classes (model_id, class, support) VALUES (%s, 0, 5)", (orphan,))
        s.execute("INSERT INTO models_by_accuracy (dataset, test_accuracy, test_loss, id, architecture) "
                  "VALUES ('mnist', 0.5, 1.0, %s, 'net')", (orphan,))
        s.execute("UPDATE model_chunks SET data = %s WHERE model_id = %s AND artifact = 'network' AND seq = 1",
                  (b"rot", corrupt))
    young = fsck.check(cfg, "mnist")  # the default grace: these might be a registration in flight
    assert young["orphan_chunks"] == [] and len(young["young"]) == 3 and not young["clean"]
    assert [c["model_id"] for c in young["corrupt"]] == [str(corrupt)]
    assert "chunk 1 of" in young["corrupt"][0]["error"] and "corrupt" in young["corrupt"][0]["error"]

    proc = run([str(BIN / "digitforge"), *reg["set"], "registry", "fsck", "--dataset", "mnist", "--json",
                "--grace-s", "0"], check=False)
    assert proc.returncode == 1 and str(orphan) in proc.stdout
    repaired = run([str(BIN / "digitforge"), *reg["set"], "registry", "fsck", "--dataset", "mnist", "--repair",
                    "--grace-s", "0"], check=False)
    assert repaired.returncode == 1  # the corrupt artifact is still reported: fsck never deletes a model
    after = fsck.check(cfg, "mnist", grace_s=0)
    assert after["orphan_chunks"] == [] and after["orphan_derived"] == [] and after["young"] == []
    assert [c["model_id"] for c in after["corrupt"]] == [str(corrupt)]
    assert rows_of(reg, orphan) == NOTHING and rows_of(reg, good)["models"]
    with session(cfg, ks) as s:  # the corrupt model deleted by hand: fsck is clean
        for artifact in ("network", "optimizer"):
            s.execute("DELETE FROM model_chunks WHERE model_id = %s AND artifact = %s", (corrupt, artifact))
        s.execute("DELETE FROM models WHERE id = %s", (corrupt,))
    assert fsck.check(cfg, "mnist", repair=True, grace_s=0)["repaired"] > 0  # its derived rows were orphans now
    assert fsck.check(cfg, "mnist", grace_s=0)["clean"]
