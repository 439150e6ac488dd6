"""A model's lineage, stored with its models row: the snapshot it was trained on (path, version, row
counts, the source keyspace and tables in its manifest) and the code that trained it."""
from __future__ import annotations

import subprocess

from digitforge import __version__
from digitforge.core.config import PROJECT_ROOT


def code_version() -> str:
    """The package version, plus the checkout's short commit when there is one (0.1.0+abc1234)."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=PROJECT_ROOT, timeout=5).stdout.strip()
    except OSError:
        sha = ""
    return f"{__version__}+{sha}" if sha else __version__


def lineage(manifest: dict, **extra) -> dict:
    """The lineage of a model trained on the snapshot `manifest`, with `extra` entries (run id, ...)."""
    return {"snapshot": manifest["path"], "snapshot_version": manifest["version"], "rows": manifest["rows"],
            "source": manifest["source"], **extra}
