"""The choice of writer before any node is asked (session=None: the contact points stand for the nodes).
Only loopback addresses where nothing listens are dialled."""
import logging

import pytest

from digitforge.core import config
from digitforge.ingest import writer_choice


def test_cql_needs_no_check_and_unknown_writers_are_refused():
    assert writer_choice.choose_writer(config.resolve(["ingest.writer=cql"]), session=None) == "cql"
    unchecked = config.resolve()  # the schema refuses writer=fast already; choose_writer checks on its own too
    unchecked["ingest"]["writer"] = "fast"
    with pytest.raises(config.ConfigError, match="ingest.writer must be one of auto, sstable, stream, cql"):
        writer_choice.choose_writer(unchecked, session=None)
    assert writer_choice.is_local_host("127.0.0.1") and writer_choice.is_local_host("localhost")
    assert not writer_choice.is_local_host("10.255.255.1")


def test_sstable_is_refused_for_a_remote_node_and_for_several_nodes():
    with pytest.raises(config.ConfigError, match="10.255.255.1 is not this machine.*ingest.writer=stream or =cql"):
        writer_choice.choose_writer(config.resolve(["cassandra.hosts=[10.255.255.1]", "ingest.writer=sstable"]), None)
    ring = "cassandra.hosts=[127.0.0.97,127.0.0.98,127.0.0.99]"
    with pytest.raises(config.ConfigError, match="3 nodes in datacenter datacenter1.*not on its replicas"):
        writer_choice.choose_writer(config.resolve([ring, "ingest.writer=sstable"]), None)


def test_auto_falls_back_to_cql_saying_why_not_sstable_nor_stream(caplog):
    cfg = config.resolve(["cassandra.hosts=[127.0.0.97,127.0.0.98]"])
    with caplog.at_level(logging.INFO, logger="digitforge.ingest.writer_choice"):
        assert writer_choice.choose_writer(cfg, None) == "cql"
    assert "not sstable: the cluster has 2 nodes" in caplog.text
    assert "not stream: the storage port 7000 (cassandra.storage_port) of 127.0.0.97, 127.0.0.98" in caplog.text
    with pytest.raises(config.ConfigError, match="ingest.writer=stream: the storage port"):
        writer_choice.choose_writer(config.resolve(["cassandra.hosts=[127.0.0.97]", "ingest.writer=stream"]), None)
