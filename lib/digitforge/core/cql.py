"""The CQL schema (schema/*.cql), applied idempotently; sessions come from core/connection.py."""
from __future__ import annotations

import logging
import re

from digitforge.core import keyspaces as keyspace_replication
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


ADD_COLUMN = re.compile(r"ALTER\s+TABLE\s+(\w+)\.(\w+)\s+ADD\s+(\w+)\s", re.IGNORECASE)


def column_exists(s, keyspace: str, table: str, column: str) -> bool:
    """True when keyspace.table has the column (fresh metadata from the node)."""
    s.cluster.refresh_table_metadata(keyspace, table)
    return column in s.cluster.metadata.keyspaces[keyspace].tables[table].columns


def apply_schema(cfg: dict, keyspaces: list[str] | None = None) -> list[str]:
    """Create every dataset keyspace and its tables if missing, and add columns missing from tables
    made by an older schema. Safe to run any number of times. An RF larger than the datacenter is refused
    before anything is created; an existing keyspace that replicates otherwise than the config asks is left
    as it is, with a warning that names the ALTER KEYSPACE to run."""
    keyspaces = keyspaces or sorted({d["keyspace"] for d in cfg["datasets"].values()})
    with session(cfg) as s:
        keyspace_replication.check_ring_can_hold(cfg, nodes_in_local_dc(s.cluster, cfg))
        for ks in keyspaces:
            if (differs := keyspace_replication.difference(s, ks, cfg)) is not None:
                log.warning("%s", differs)
            for stmt in statements(ks, replication(cfg)):
                add = ADD_COLUMN.match(stmt)
                if add and column_exists(s, *add.groups()):
                    continue  # ALTER TABLE ... ADD fails on an existing column: add missing ones only
                if add:
                    log.info("adding column %s to %s.%s", add.group(3), add.group(1), add.group(2))
                s.execute(stmt)
            log.info("schema applied to keyspace %s", ks)
    return keyspaces
