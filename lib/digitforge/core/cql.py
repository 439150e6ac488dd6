"""The CQL schema (schema/*.cql), applied idempotently; sessions come from core/connection.py."""
from __future__ import annotations

import logging

from digitforge.core import replication as keyspace_replication
from digitforge.core.config import PROJECT_ROOT
from digitforge.core.connection import nodes_in_local_dc, replication, session

log = logging.getLogger(__name__)
SCHEMA_TEMPLATE = PROJECT_ROOT / "schema" / "dataset_keyspace.cql.in"


def statements(keyspace: str, replication: str = "{'class': 'NetworkTopologyStrategy', 'datacenter1': 1}") -> list[str]:
    """The schema's CQL statements for one keyspace (created with `replication`), comments stripped."""
    text = SCHEMA_TEMPLATE.read_text().replace("@KEYSPACE@", keyspace).replace("@REPLICATION@", replication)
    lines = [ln for ln in text.splitlines() if not ln.strip().startswith("--")]
    body = "\n".join(ln.split("--")[0] for ln in lines)
    return [s.strip() for s in body.split(";") if s.strip()]


def apply_schema(cfg: dict, keyspaces: list[str] | None = None) -> list[str]:
    """Create every dataset keyspace (or just `keyspaces`) and its tables if missing, and add the columns
    that tables made by the original demo or an older schema lack (core/tables.py). Changes and deletes
    nothing that is there. Safe to run any number of times. An RF larger than the datacenter is refused
    before anything is created; an existing keyspace that replicates otherwise than the config asks is left
    as it is, with a warning that names the ALTER KEYSPACE to run."""
    from digitforge.core.tables import add_missing_columns

    keyspaces = keyspaces or sorted({d["keyspace"] for d in cfg["datasets"].values()})
    with session(cfg) as s:
        keyspace_replication.check_ring_can_hold(cfg, nodes_in_local_dc(s.cluster, cfg))
        for ks in keyspaces:
            if (differs := keyspace_replication.difference(s, ks, cfg)) is not None:
                log.warning("%s", differs)
            for stmt in statements(ks, replication(cfg)):
                s.execute(stmt)
            add_missing_columns(s, ks)
            log.info("schema applied to keyspace %s", ks)
    return keyspaces
