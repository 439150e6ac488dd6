"""Checksums of stored bytes (artifacts, chunks): hashlib only, so the registry CLI needs no torch."""
from __future__ import annotations

import hashlib


def sha256(data: bytes) -> str:
    """Hex sha256 of the bytes."""
    return hashlib.sha256(data).hexdigest()
