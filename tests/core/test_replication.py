"""Keyspace replication from config: the map, the comparison, the ALTER it suggests, the RF check."""
import pytest

from digitforge.core import config
from digitforge.core import replication as keyspaces
from digitforge.core.connection import CassandraConfigError


def test_replication_is_network_topology_in_the_configured_datacenter():
    cfg = config.resolve(["cassandra.local_dc=dc_east", "cassandra.replication_factor=3"])
    assert keyspaces.wanted(cfg) == {"class": "NetworkTopologyStrategy", "dc_east": "3"}
    assert keyspaces.alter_statement("ks", cfg) == \
        "ALTER KEYSPACE ks WITH replication = {'class': 'NetworkTopologyStrategy', 'dc_east': 3};"


def test_cluster_maps_compare_by_the_class_short_name():
    found = {"class": "org.apache.cassandra.locator.NetworkTopologyStrategy", "datacenter1": "1"}
    assert keyspaces.normalise(found) == keyspaces.wanted(config.resolve([]))
    simple = keyspaces.normalise({"class": "org.apache.cassandra.locator.SimpleStrategy", "replication_factor": "1"})
    assert simple != keyspaces.wanted(config.resolve([]))


def test_an_rf_larger_than_the_datacenter_is_refused_naming_the_setting():
    keyspaces.check_ring_can_hold(config.resolve(["cassandra.replication_factor=3"]), nodes_in_dc=3)
    with pytest.raises(CassandraConfigError, match=r"cassandra.replication_factor=4 but datacenter datacenter1 "
                                                   r"\(cassandra.local_dc\) has 3 node\(s\)"):
        keyspaces.check_ring_can_hold(config.resolve(["cassandra.replication_factor=4"]), nodes_in_dc=3)


class _Replication:
    """A session whose system_schema answers one keyspace's replication map."""

    def __init__(self, replication: dict):
        self.replication = replication

    def execute(self, *_args):
        row = type("Row", (), {"replication": self.replication})
        return type("Rows", (), {"one": lambda _self: row})()


def test_a_write_survives_the_nodes_down_only_while_every_range_keeps_enough_live_replicas():
    cfg = config.resolve(["cassandra.replication_factor=3", "cassandra.consistency=LOCAL_QUORUM"])
    s = _Replication({"class": "org.apache.cassandra.locator.NetworkTopologyStrategy", "datacenter1": "3"})
    assert [keyspaces.replicas_needed(c, 3) for c in ("ONE", "LOCAL_QUORUM", "ALL")] == [1, 2, 3]
    assert keyspaces.writable_without(s, "ks", cfg, ["127.0.1.3"]) is None
    problem = keyspaces.writable_without(s, "ks", cfg, ["127.0.1.2", "127.0.1.3"])
    assert problem == ("with 127.0.1.2, 127.0.1.3 down a range of ks may have 1 of its 3 replicas live, fewer than "
                       "the 2 that cassandra.consistency=LOCAL_QUORUM needs")
