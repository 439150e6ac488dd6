"""Paths and URLs of stored data (snapshots): local paths become file:// URLs for Petastorm/pyarrow, and
file:// URLs become paths again for pyarrow.parquet; other schemes (hdfs://, s3://) pass through."""
from __future__ import annotations

import os
from pathlib import Path

FILE_SCHEME = "file://"


def is_url(location: str | Path) -> bool:
    """True for a URL with a scheme (file://, hdfs://, ...), False for a plain path."""
    return "://" in str(location)


def to_url(location: str | Path) -> str:
    """A URL for Petastorm/pyarrow: a plain path becomes file://<absolute path>, a URL stays as it is."""
    s = str(location)
    return s if is_url(s) else FILE_SCHEME + os.path.abspath(s)


def local_path(location: str | Path) -> str:
    """A file:// URL or a plain path as a plain path (other URLs are returned as they are)."""
    return str(location).removeprefix(FILE_SCHEME)


def child_url(location: str | Path, *parts: str) -> str:
    """The URL of a folder inside `location` (a path or a URL), e.g. a snapshot's split."""
    return to_url("/".join([str(location).rstrip("/"), *parts]))
