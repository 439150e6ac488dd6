"""Time as digitforge stores it: UTC, milliseconds for Cassandra, ISO 8601 text for JSON, and sortable
stamps for folder names (snapshot versions, run ids)."""
from __future__ import annotations

from datetime import datetime, timezone

STAMP_FORMAT = "%Y%m%dT%H%M%S%fZ"


def now_ms() -> datetime:
    """Now in UTC, rounded down to milliseconds: Cassandra timestamps hold milliseconds, so a value
    written to several tables (or compared after a read) stays the very same."""
    now = datetime.now(timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def now_iso() -> str:
    """Now in UTC as ISO 8601 text (manifests, run files)."""
    return datetime.now(timezone.utc).isoformat()


def iso_utc(ts: datetime | None) -> str | None:
    """A timestamp read from Cassandra (naive, in UTC) as ISO 8601 text with its offset; None stays None."""
    return ts.replace(tzinfo=timezone.utc).isoformat() if ts else None


def stamp() -> str:
    """Now as a sortable UTC stamp, e.g. 20261202T170004123456Z (snapshot versions, run ids)."""
    return datetime.now(timezone.utc).strftime(STAMP_FORMAT)
