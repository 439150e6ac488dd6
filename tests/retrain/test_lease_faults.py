"""Fault drills for the retrain lease against the real node: a release that fails for real never hides
the error that ended the block, and LWTs whose reply timed out (applied or not) are decided by reading
the lease back. (The takeover drill runs the whole retrain job: test_retrain_job.py.)"""
import os

import pytest
from cassandra import ConsistencyLevel, WriteTimeout, WriteType

from conftest import BIN, run
from digitforge.core import config
from digitforge.core.connection import session
from digitforge.core.cql import apply_schema
from digitforge.core.clock import now_ms
from digitforge.retrain.lease import Lease, LeaseLost, LeaseStore

pytestmark = [pytest.mark.integration, pytest.mark.faults]


@pytest.fixture(scope="module")
def lease_ks(module_keyspace):
    return module_keyspace


def test_a_failed_release_never_hides_the_original_error(lease_ks, caplog):
    cfg, ks = lease_ks
    with pytest.raises(ZeroDivisionError, match="the work failed"):
        with Lease(cfg, ks, "release", ttl_s=60, renew_every_s=3600):
            with session(cfg) as s:  # the release statement will fail for real: its table is gone
                s.execute(f"DROP TABLE {ks}.leases")
            raise ZeroDivisionError("the work failed")
    assert "could not release lease 'release'" in caplog.text
    apply_schema(cfg, [ks])  # the table back, for the other drills


class LostReply:
    """A real session whose next LWT reply is lost: `applied=True` runs the statement on the node and
    then raises the coordinator's CAS WriteTimeout (the proposal went through, the reply did not);
    `applied=False` raises it without running it."""

    def __init__(self, s, applied: bool, times: int = 1):
        self.s, self.applied, self.times = s, applied, times

    def execute(self, query, params=None):
        if self.times and " IF " in str(query):
            self.times -= 1
            if self.applied:
                self.s.execute(query, params)
            raise WriteTimeout("timed out (injected reply loss)", consistency=ConsistencyLevel.SERIAL,
                               write_type=WriteType.CAS, received_responses=0, required_responses=1)
        return self.s.execute(query, params)


@pytest.mark.parametrize("applied", [True, False])
def test_a_timed_out_acquire_is_decided_by_reading_the_lease_back(lease_ks, applied):
    cfg, ks = lease_ks
    name = f"acquire-{applied}"
    with session(cfg) as s:
        store = LeaseStore(LostReply(s, applied), ks)
        assert store.acquire(name, "me", 60, now_ms()) == (True, None)
        assert LeaseStore(s, ks).holder(name)["owner"] == "me"
        taken, holder = LeaseStore(LostReply(s, applied), ks).acquire(name, "other", 60, now_ms())
        assert not taken and holder["owner"] == "me"
        assert LeaseStore(LostReply(s, applied), ks).release(name, "me") is True
        assert LeaseStore(s, ks).holder(name) is None


def test_a_renewal_that_keeps_timing_out_counts_as_lost(lease_ks):
    cfg, ks = lease_ks
    with Lease(cfg, ks, "renew", ttl_s=60, renew_every_s=3600) as lease:
        lease.check("a first write")  # confirmed
        real = lease._store.s
        lease._store.s = LostReply(real, applied=True, times=3)
        with pytest.raises(LeaseLost, match="before a second write"):
            lease.check("a second write")
        lease._store.s = real


def test_a_lease_taken_over_fences_every_later_write(lease_ks):
    cfg, ks = lease_ks
    with Lease(cfg, ks, "fence", ttl_s=60, renew_every_s=3600) as lease:
        lease.check("writing")
        with session(cfg) as s:  # as if it expired and another run took it
            s.execute(f"DELETE FROM {ks}.leases WHERE name = 'fence'")
            assert LeaseStore(s, ks).acquire("fence", "another-run", 60, now_ms())[0]
        with pytest.raises(LeaseLost, match="no longer held"):
            lease.check("promoting the challenger")
    with session(cfg) as s:  # the new owner's lease was not released by the fenced run
        assert LeaseStore(s, ks).holder("fence")["owner"] == "another-run"


def test_a_retrain_run_whose_lease_was_taken_over_promotes_nothing(cassandra_node, tmp_path):
    """The real job (spark-submit): its lease is taken over while it works (as if it had expired during a
    stall and another run took it); with no champion yet, its challenger would become champion."""
    import subprocess

    import numpy as np

    from conftest import ROOT

    ks = f"it_leasejob_{os.getpid()}"
    overrides = [f"datasets.mnist.keyspace={ks}", f"convert.snapshot_root={tmp_path / 'snapshots'}",
                 "convert.files_per_split=2", "report.enabled=false", f"train.checkpoint_dir={tmp_path / 'ckpt'}",
                 "train.epochs=1", "retrain.lease_ttl_s=600"]
    cfg = config.resolve(overrides)
    apply_schema(cfg, [ks])
    rng = np.random.default_rng(0)
    try:
        with session(cfg, ks) as s:
            for table, n in (("raw_train", 400), ("raw_test", 200)):
                insert = s.prepare(f"INSERT INTO {table} (id, label, pixels) VALUES (?, ?, ?)")
                for i in range(n):
                    label = int(rng.integers(0, 10))
                    image = rng.integers(0, 40, (28, 28)).astype(np.uint8)
                    image[2 * label:2 * label + 6, 4:24] = 255
                    s.execute(insert, (i, label, image.tobytes()))
        cmd = [str(ROOT / "scripts" / "submit.sh"), "retrain", "--dataset", "mnist",
               *[a for o in overrides for a in ("--set", o)]]
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=dict(os.environ, PYTHONUNBUFFERED="1"))
        output = []
        for line in proc.stdout:
            output.append(line)
            if "taken by" in line:  # it holds the lease: take it over
                with session(cfg) as s:
                    s.execute(f"DELETE FROM {ks}.leases WHERE name = 'retrain'")
                    assert LeaseStore(s, ks).acquire("retrain", "another-run", 600, now_ms())[0]
                break
        output += proc.stdout.readlines()
        proc.wait(timeout=600)
        text = "".join(output)
        assert proc.returncode == 3, text[-4000:]
        assert "no longer held" in text and "before registering the challenger" in text
        assert "registered, promoted and recorded nothing" in text
        with session(cfg, ks) as s:
            assert list(s.execute("SELECT id FROM models")) == []
            assert list(s.execute("SELECT alias FROM aliases")) == []
            assert list(s.execute("SELECT run_id FROM retrain_runs")) == []
            assert LeaseStore(s, ks).holder("retrain")["owner"] == "another-run"
    finally:
        run([str(BIN / "cqlsh"), "127.0.0.1", "--request-timeout", "60", "-e", f"DROP KEYSPACE IF EXISTS {ks}"],
            check=False)
