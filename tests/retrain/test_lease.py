"""The Cassandra lease against the real local node, in a keyspace of this test run's own."""
import time

import pytest

from digitforge.core.clock import now_ms
from digitforge.core.connection import session
from digitforge.retrain.lease import Lease, LeaseHeld, LeaseLost, LeaseStore

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def lease_ks(module_keyspace):
    return module_keyspace


def wait_until_free(cfg, ks, name, limit_s=30):
    """Poll (no timing assertion): the row is gone once its TTL has passed."""
    deadline = time.time() + limit_s
    with session(cfg) as s:
        store = LeaseStore(s, ks)
        while store.holder(name) is not None and time.time() < deadline:
            time.sleep(0.5)
        return store.holder(name)


def test_overlapping_acquire_is_refused_and_release_frees_it(lease_ks):
    cfg, ks = lease_ks
    with Lease(cfg, ks, "overlap", ttl_s=60) as first:
        with pytest.raises(LeaseHeld, match=f"held by {first.owner}.*another run is in progress"):
            with Lease(cfg, ks, "overlap", ttl_s=60):
                pass
        first.check()  # the refused run did not disturb the holder
    with Lease(cfg, ks, "overlap", ttl_s=60) as second:  # released on exit: the next run takes it
        assert second.owner != first.owner


def test_stale_lease_of_a_crashed_run_expires_and_can_be_taken(lease_ks):
    cfg, ks = lease_ks
    with session(cfg) as s:
        taken, _ = LeaseStore(s, ks).acquire("stale", "crashed-run", 2, now_ms())  # never released
    assert taken
    with pytest.raises(LeaseHeld, match="crashed-run"):
        with Lease(cfg, ks, "stale", ttl_s=60):
            pass
    assert wait_until_free(cfg, ks, "stale") is None
    with Lease(cfg, ks, "stale", ttl_s=60) as lease:
        lease.check()


def test_release_and_renew_by_a_non_owner_are_refused(lease_ks):
    cfg, ks = lease_ks
    with Lease(cfg, ks, "owned", ttl_s=60) as lease, session(cfg) as s:
        store = LeaseStore(s, ks)
        assert not store.release("owned", "intruder")
        assert not store.renew("owned", "intruder", 60, now_ms())
        assert store.holder("owned")["owner"] == lease.owner
    with session(cfg) as s:
        assert LeaseStore(s, ks).holder("owned") is None


def test_a_running_holder_keeps_its_lease_past_the_ttl(lease_ks):
    cfg, ks = lease_ks
    with Lease(cfg, ks, "renewed", ttl_s=2, renew_every_s=0.5) as lease:
        time.sleep(3.5)  # longer than the TTL: only the renewals keep it
        lease.check()
        with pytest.raises(LeaseHeld):
            with Lease(cfg, ks, "renewed", ttl_s=60):
                pass


def test_a_holder_that_lost_its_lease_finds_out_before_writing(lease_ks):
    cfg, ks = lease_ks
    with Lease(cfg, ks, "lost", ttl_s=2, renew_every_s=3600) as lease:  # no renewal in time
        assert wait_until_free(cfg, ks, "lost") is None
        with session(cfg) as s:
            assert LeaseStore(s, ks).acquire("lost", "next-run", 60, now_ms())[0]
        with pytest.raises(LeaseLost):
            lease.check()
    with session(cfg) as s:  # leaving the block did not release the new holder's lease
        assert LeaseStore(s, ks).holder("lost")["owner"] == "next-run"
