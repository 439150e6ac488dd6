"""cassandra-driver sessions and the schema (schema/*.cql), applied idempotently.

`cluster(cfg)` is the one place that turns the config's `cassandra:` section into a driver Cluster:
library code, the CLI and the tests all get their sessions from `session(cfg, keyspace)`."""
from __future__ import annotations

import logging
import re
from contextlib import contextmanager

from digitforge.core.config import PROJECT_ROOT

log = logging.getLogger(__name__)
SCHEMA_TEMPLATE = PROJECT_ROOT / "schema" / "dataset_keyspace.cql.in"


def cluster(cfg: dict):
    """A cassandra-driver Cluster (not yet connected) for the node(s) of cfg["cassandra"]."""
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import RoundRobinPolicy

    cc = cfg["cassandra"]
    profile = ExecutionProfile(load_balancing_policy=RoundRobinPolicy(), request_timeout=60)
    return Cluster([cc["host"]], port=int(cc["port"]), protocol_version=5,
                   execution_profiles={EXEC_PROFILE_DEFAULT: profile}, connect_timeout=10)


@contextmanager
def session(cfg: dict, keyspace: str | None = None):
    """A driver session on `keyspace` (or none), shut down with its cluster when the block ends."""
    c = cluster(cfg)
    try:
        yield c.connect(keyspace)
    finally:
        c.shutdown()


def statements(keyspace: str) -> list[str]:
    """The schema's CQL statements for one keyspace, comments stripped."""
    text = SCHEMA_TEMPLATE.read_text().replace("@KEYSPACE@", keyspace)
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
    made by an older schema. Safe to run any number of times."""
    keyspaces = keyspaces or sorted({d["keyspace"] for d in cfg["datasets"].values()})
    with session(cfg) as s:
        for ks in keyspaces:
            for stmt in statements(ks):
                add = ADD_COLUMN.match(stmt)
                if add and column_exists(s, *add.groups()):
                    continue  # ALTER TABLE ... ADD fails on an existing column: add missing ones only
                if add:
                    log.info("adding column %s to %s.%s", add.group(3), add.group(1), add.group(2))
                s.execute(stmt)
            log.info("schema applied to keyspace %s", ks)
    return keyspaces
