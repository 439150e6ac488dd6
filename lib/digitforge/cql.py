"""cassandra-driver sessions and the schema (schema/*.cql), applied idempotently."""
from __future__ import annotations

import logging
from contextlib import contextmanager

from .config import PROJECT_ROOT

log = logging.getLogger(__name__)
SCHEMA_TEMPLATE = PROJECT_ROOT / "schema" / "dataset_keyspace.cql.in"


@contextmanager
def session(cfg: dict, keyspace: str | None = None):
    from cassandra.cluster import Cluster
    from cassandra.policies import RoundRobinPolicy

    cluster = Cluster([cfg["cassandra"]["host"]], port=int(cfg["cassandra"]["port"]),
                      load_balancing_policy=RoundRobinPolicy(), protocol_version=5,
                      connect_timeout=10)
    try:
        s = cluster.connect(keyspace)
        s.default_timeout = 60
        yield s
    finally:
        cluster.shutdown()


def statements(keyspace: str) -> list[str]:
    text = SCHEMA_TEMPLATE.read_text().replace("@KEYSPACE@", keyspace)
    lines = [ln for ln in text.splitlines() if not ln.strip().startswith("--")]
    body = "\n".join(ln.split("--")[0] for ln in lines)
    return [s.strip() for s in body.split(";") if s.strip()]


def apply_schema(cfg: dict, keyspaces: list[str] | None = None) -> list[str]:
    """Create every dataset keyspace and its tables if missing. Safe to run any number of times."""
    keyspaces = keyspaces or sorted({d["keyspace"] for d in cfg["datasets"].values()})
    with session(cfg) as s:
        for ks in keyspaces:
            for stmt in statements(ks):
                s.execute(stmt)
            log.info("schema applied to keyspace %s", ks)
    return keyspaces
