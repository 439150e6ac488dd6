"""Large artifacts as numbered chunks, each with its sha256, and their reassembly with every check named.

Cassandra handles megabyte blobs poorly in one cell (one mutation, one frame, one read), so an
artifact larger than the chunk size is stored as rows (seq 0..n-1) of at most that many bytes.
Pure functions: no Cassandra here.
"""
from __future__ import annotations

from digitforge.core.digest import sha256


class ChunkError(ValueError):
    """A chunk is missing, extra or corrupt; the message names the artifact and the chunk."""


def split(data: bytes, chunk_bytes: int) -> list[bytes]:
    """[] when data fits inline (at most chunk_bytes), else the chunks in order."""
    if chunk_bytes <= 0:
        raise ValueError(f"chunk size must be positive, not {chunk_bytes}")
    if len(data) <= chunk_bytes:
        return []
    return [data[i:i + chunk_bytes] for i in range(0, len(data), chunk_bytes)]


def assemble(rows, expected_count: int, what: str) -> bytes:
    """Join chunk rows (seq, data, sha256) in seq order, checking that seq 0..expected_count-1 are
    all there and each matches its own checksum. `what` names the artifact in errors."""
    by_seq = {}
    for seq, data, digest in rows:
        by_seq[seq] = (data, digest)
    missing = [seq for seq in range(expected_count) if seq not in by_seq]
    if missing:
        listed = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        raise ChunkError(f"{what}: chunk {listed} of {expected_count} missing from model_chunks")
    extra = sorted(set(by_seq) - set(range(expected_count)))
    if extra:
        raise ChunkError(f"{what}: unexpected chunk {extra[0]} (the model row says {expected_count} chunks)")
    for seq in range(expected_count):
        data, digest = by_seq[seq]
        if data is None or sha256(data) != digest:
            raise ChunkError(f"{what}: chunk {seq} of {expected_count} is corrupt (sha256 mismatch)")
    return b"".join(by_seq[seq][0] for seq in range(expected_count))
