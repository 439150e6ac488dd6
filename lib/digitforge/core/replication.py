"""Keyspace replication from config: NetworkTopologyStrategy {cassandra.local_dc: cassandra.replication_factor}.

`schema apply` creates a missing keyspace with it; an existing keyspace that replicates otherwise is left as it
is (changing replication moves data and needs a repair: a person decides) and `differences` says what to run.
"""
from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def wanted(cfg: dict) -> dict[str, str]:
    """The replication the config asks for, as Cassandra lists it (class short name, counts as text)."""
    c = cfg["cassandra"]
    return {"class": "NetworkTopologyStrategy", str(c["local_dc"]): str(int(c["replication_factor"]))}


def cql_map(replication: dict[str, str]) -> str:
    """{'class': 'NetworkTopologyStrategy', 'datacenter1': 3} (numbers unquoted, as one writes it)."""
    items = [f"'{k}': " + (v if k != "class" and v.isdigit() else f"'{v}'") for k, v in replication.items()]
    return "{" + ", ".join(items) + "}"


def normalise(found: dict) -> dict[str, str]:
    """A replication map from system_schema.keyspaces with the class's short name."""
    return {k: (str(v).rsplit(".", 1)[-1] if k == "class" else str(v)) for k, v in found.items()}


def alter_statement(keyspace: str, cfg: dict) -> str:
    return f"ALTER KEYSPACE {keyspace} WITH replication = {cql_map(wanted(cfg))};"


def current(session, keyspace: str) -> dict[str, str] | None:
    """The keyspace's replication as the cluster has it (None: no such keyspace)."""
    row = session.execute("SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = %s",
                          (keyspace,)).one()
    return normalise(dict(row.replication)) if row else None


def check_ring_can_hold(cfg: dict, nodes_in_dc: int) -> None:
    """An RF larger than the datacenter's node count refuses every write at LOCAL_QUORUM: refuse it first."""
    from digitforge.core.connection import CassandraConfigError

    c = cfg["cassandra"]
    rf = int(c["replication_factor"])
    if rf < 1:
        raise CassandraConfigError(f"cassandra.replication_factor={rf}: must be at least 1")
    if rf > nodes_in_dc:
        raise CassandraConfigError(f"cassandra.replication_factor={rf} but datacenter {c['local_dc']} "
                                   f"(cassandra.local_dc) has {nodes_in_dc} node(s): at most {nodes_in_dc}")


def difference(session, keyspace: str, cfg: dict) -> str | None:
    """None when the keyspace is missing or replicates as configured; else what to run to make it so."""
    found = current(session, keyspace)
    if found is None or found == wanted(cfg):
        return None
    return (f"keyspace {keyspace} replicates {cql_map(found)}, the config asks for {cql_map(wanted(cfg))} "
            f"(cassandra.local_dc, cassandra.replication_factor); schema apply leaves it as it is. To change it run "
            f"`{alter_statement(keyspace, cfg)}` then `nodetool repair -full {keyspace}` on every node")


def replicas_needed(consistency: str, rf: int) -> int:
    """How many replicas of a row must take a write at this consistency level (LOCAL_QUORUM at RF 3: 2)."""
    name = str(consistency).upper()
    fixed = {"ANY": 1, "ONE": 1, "LOCAL_ONE": 1, "TWO": 2, "THREE": 3}
    if name in fixed:
        return fixed[name]
    if name in ("QUORUM", "LOCAL_QUORUM", "EACH_QUORUM"):
        return rf // 2 + 1
    return rf  # ALL


def rf_in_dc(session, keyspace: str, cfg: dict) -> int:
    """The keyspace's replication factor in cassandra.local_dc, as the cluster has it (else the config's)."""
    found = current(session, keyspace) or {}
    rf = found.get(str(cfg["cassandra"]["local_dc"])) or found.get("replication_factor")
    return int(rf) if rf else int(cfg["cassandra"]["replication_factor"])


def writable_without(session, keyspace: str, cfg: dict, down: list[str]) -> str | None:
    """None when every range of the keyspace still has enough live replicas for a write at
    cassandra.consistency with the nodes `down` (of cassandra.local_dc) gone: a range loses at most one
    replica per node down, so RF - len(down) live replicas is a lower bound for every range. Else why not."""
    rf, consistency = rf_in_dc(session, keyspace, cfg), cfg["cassandra"]["consistency"]
    needed = replicas_needed(consistency, rf)
    if rf - len(down) >= needed:
        return None
    return (f"with {', '.join(down)} down a range of {keyspace} may have {max(rf - len(down), 0)} of its {rf} replicas "
            f"live, fewer than the {needed} that cassandra.consistency={consistency} needs")
