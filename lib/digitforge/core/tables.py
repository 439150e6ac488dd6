"""The tables of a dataset keyspace as schema/dataset_keyspace.cql.in describes them, what an existing
keyspace lacks of them, and the check every job makes before it works on a keyspace.

A keyspace made by the original demo (raw_* with `pixels list<int>`, a five-column `models` table) or by an
older digitforge lacks tables and columns; `digitforge schema apply --keyspace KS` adds them in place
(`add_missing_columns`), and until then every job stops before any work with one error naming the
keyspace, what is missing and that command. Column types are not compared: apply never changes a column,
and the readers take both pixel layouts.
"""
from __future__ import annotations

import logging
import re

from digitforge.core.connection import session
from digitforge.core.cql import statements

log = logging.getLogger(__name__)

CREATE_TABLE = re.compile(r"CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS\s+\w+\.(\w+)\s*\(", re.IGNORECASE)


class KeyspaceNotReady(ValueError):
    """The keyspace does not exist, or lacks tables or columns of the current schema (exit 2)."""


def _top_level_items(body: str) -> list[str]:
    """`a int, b text, PRIMARY KEY ((a), b)` -> its comma-separated items, commas inside parentheses kept."""
    items, depth, start = [], 0, 0
    for i, ch in enumerate(body):
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            items.append(body[start:i])
            start = i + 1
    items.append(body[start:])
    return [item.strip() for item in items if item.strip()]


def _definition(stmt: str, start: int) -> str:
    """The text between the parenthesis at `start - 1` and its closing one."""
    depth = 1
    for i in range(start, len(stmt)):
        depth += stmt[i] == "("
        depth -= stmt[i] == ")"
        if depth == 0:
            return stmt[start:i]
    raise ValueError(f"unbalanced parentheses in the schema template: {stmt[:60]}...")


def table_columns(keyspace: str) -> dict[str, dict[str, str]]:
    """table -> {column: its definition after the name, e.g. 'uuid STATIC'}, in the template's order."""
    tables = {}
    for stmt in statements(keyspace):
        m = CREATE_TABLE.match(stmt)
        if not m:
            continue
        columns = {}
        for item in _top_level_items(_definition(stmt, m.end())):
            name, *rest = item.split()
            if name.upper() == "PRIMARY":
                continue
            columns[name] = " ".join(w for w in rest if w.upper() not in ("PRIMARY", "KEY"))
        tables[m.group(1)] = columns
    return tables


def missing(s, keyspace: str) -> dict[str, list[str]] | None:
    """What the keyspace lacks: table -> its missing columns ([] for a missing table); None when the
    keyspace itself does not exist. Read from the node's current schema metadata."""
    s.cluster.refresh_schema_metadata()
    meta = s.cluster.metadata.keyspaces.get(keyspace)
    if meta is None:
        return None
    lacking = {}
    for table, columns in table_columns(keyspace).items():
        if table not in meta.tables:
            lacking[table] = []
            continue
        absent = [c for c in columns if c not in meta.tables[table].columns]
        if absent:
            lacking[table] = absent
    return lacking


def describe(keyspace: str, lacking: dict[str, list[str]]) -> str:
    """One line: what the keyspace lacks and the command that adds it."""
    tables = [t for t, cols in lacking.items() if not cols]
    columns = [f"{t}.{c}" for t, cols in lacking.items() for c in cols]
    parts = ([f"tables {', '.join(tables)}"] if tables else []) + ([f"columns {', '.join(columns)}"] if columns else [])
    return (f"keyspace {keyspace} is not at the current digitforge schema (made by the original demo or an older "
            f"digitforge?): missing {'; '.join(parts)}. Run `digitforge schema apply --keyspace {keyspace}`: it adds "
            "them in place and changes or deletes nothing")


def require_current(cfg: dict, keyspace: str) -> None:
    """Raise KeyspaceNotReady unless the keyspace exists with every table and column of the schema. Jobs
    call this before any work, so an old keyspace is one clear error, never a failure after training."""
    with session(cfg) as s:
        lacking = missing(s, keyspace)
    if lacking is None:
        raise KeyspaceNotReady(f"keyspace {keyspace} does not exist: ingest into it (`scripts/submit.sh ingest "
                               f"--keyspace {keyspace} ...`) or create it with `digitforge schema apply --keyspace "
                               f"{keyspace}`")
    if lacking:
        raise KeyspaceNotReady(describe(keyspace, lacking))


def add_missing_columns(s, keyspace: str) -> list[str]:
    """ALTER TABLE ... ADD every column of the template that an existing table lacks (tables made by the
    original demo or an older schema); returns them as table.column. Existing columns are left as they are."""
    added = []
    for table, columns in (missing(s, keyspace) or {}).items():
        for column in columns:
            s.execute(f"ALTER TABLE {keyspace}.{table} ADD {column} {table_columns(keyspace)[table][column]}")
            log.info("added column %s.%s.%s", keyspace, table, column)
            added.append(f"{table}.{column}")
    return added
