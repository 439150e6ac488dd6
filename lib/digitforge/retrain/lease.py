"""A lease in Cassandra: one holder at a time, taken with a lightweight transaction, kept alive by a TTL.

    with Lease(cfg, keyspace, "retrain", ttl_s=3600):   # raises LeaseHeld if another run holds it
        ...                                             # renewed every ttl/3 while the block runs

acquire  = INSERT ... IF NOT EXISTS USING TTL ttl  (Paxos: of two concurrent runs exactly one wins)
renew    = UPDATE ... USING TTL ttl ... IF owner = me
release  = DELETE ... IF owner = me
A run that crashes never releases; its row expires after the TTL, so it cannot block the next night.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from datetime import datetime

from digitforge.core.clock import iso_utc, now_ms
from digitforge.core.connection import session

log = logging.getLogger(__name__)


class LeaseHeld(RuntimeError):
    """Another owner holds the lease."""


class LeaseLost(RuntimeError):
    """This owner no longer holds the lease (it expired, or another owner took it after expiry)."""


def new_owner() -> str:
    """host:pid:random, unique per run, readable in the table."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class LeaseStore:
    """The LWT statements on `<keyspace>.leases` over an open cassandra-driver session."""

    def __init__(self, s, keyspace: str):
        self.s, self.keyspace = s, keyspace

    def acquire(self, name: str, owner: str, ttl_s: int, acquired_at: datetime) -> tuple[bool, dict | None]:
        """(True, None) if taken, else (False, the current holder: owner, acquired_at, seconds left)."""
        rs = self.s.execute(f"INSERT INTO {self.keyspace}.leases (name, owner, acquired_at) VALUES (%s, %s, %s) "
                            f"IF NOT EXISTS USING TTL {int(ttl_s)}", (name, owner, acquired_at))
        if rs.was_applied:
            return True, None
        return False, self.holder(name)

    def renew(self, name: str, owner: str, ttl_s: int, acquired_at: datetime) -> bool:
        """Restart the TTL of both columns (a TTL is per cell), if `owner` still holds the lease."""
        rs = self.s.execute(f"UPDATE {self.keyspace}.leases USING TTL {int(ttl_s)} SET owner = %s, acquired_at = %s "
                            "WHERE name = %s IF owner = %s", (owner, acquired_at, name, owner))
        return bool(rs.was_applied)

    def release(self, name: str, owner: str) -> bool:
        """Delete the lease if `owner` still holds it; True when it did."""
        rs = self.s.execute(f"DELETE FROM {self.keyspace}.leases WHERE name = %s IF owner = %s", (name, owner))
        return bool(rs.was_applied)

    def holder(self, name: str) -> dict | None:
        """The current holder, read with SERIAL consistency so it agrees with the LWTs."""
        from cassandra import ConsistencyLevel
        from cassandra.query import SimpleStatement

        stmt = SimpleStatement(f"SELECT owner, acquired_at, TTL(owner) AS ttl FROM {self.keyspace}.leases WHERE name = %s",
                               consistency_level=ConsistencyLevel.SERIAL)
        row = self.s.execute(stmt, (name,)).one()
        if row is None:
            return None
        acquired = iso_utc(row.acquired_at)
        return {"owner": row.owner, "acquired_at": acquired, "expires_in_s": row.ttl}


class Lease:
    """A context manager holding the lease `name` in `keyspace` for the duration of a block.

    A background thread renews it every ttl_s/3 (renew_every_s), so a long run keeps it while a
    crashed one loses it within ttl_s. If a renewal finds the lease gone, `lost` is set and the
    holder can check it (`check()` raises LeaseLost) before it writes its results."""

    def __init__(self, cfg: dict, keyspace: str, name: str, ttl_s: int = 3600, owner: str | None = None,
                 renew_every_s: float | None = None):
        if int(ttl_s) < 1:
            raise ValueError(f"lease ttl must be at least 1 second, not {ttl_s!r}")
        self.cfg, self.keyspace, self.name, self.ttl_s = cfg, keyspace, name, int(ttl_s)
        self.owner = owner or new_owner()
        self.renew_every_s = renew_every_s if renew_every_s is not None else max(self.ttl_s / 3, 0.5)
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._session_cm = None
        self._store: LeaseStore | None = None

    def __enter__(self) -> "Lease":
        self._session_cm = session(self.cfg)
        self._store = LeaseStore(self._session_cm.__enter__(), self.keyspace)
        self.acquired_at = now_ms()
        try:
            taken, holder = self._store.acquire(self.name, self.owner, self.ttl_s, self.acquired_at)
            if not taken:
                h = holder or {}
                raise LeaseHeld(f"lease {self.keyspace}.leases[{self.name!r}] is held by {h.get('owner')} since "
                                f"{h.get('acquired_at')} (expires in {h.get('expires_in_s')} s unless renewed); "
                                "another run is in progress")
        except BaseException:
            self._session_cm.__exit__(None, None, None)
            raise
        log.info("lease %s.leases[%r] taken by %s for %d s", self.keyspace, self.name, self.owner, self.ttl_s)
        self._thread = threading.Thread(target=self._renew_loop, name=f"lease-{self.name}", daemon=True)
        self._thread.start()
        return self

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.renew_every_s):
            try:
                if not self._store.renew(self.name, self.owner, self.ttl_s, self.acquired_at):
                    log.error("lease %r lost: it expired or another owner holds it now", self.name)
                    self.lost.set()
                    return
            except Exception as e:  # a failed renewal is retried; the TTL leaves room for a few
                log.warning("renewing lease %r failed (%s); retrying", self.name, e)

    def check(self) -> None:
        """Raise LeaseLost if this run no longer holds the lease (do it before writing results)."""
        if self.lost.is_set() or not self._store.renew(self.name, self.owner, self.ttl_s, self.acquired_at):
            self.lost.set()
            raise LeaseLost(f"lease {self.keyspace}.leases[{self.name!r}] is no longer held by {self.owner}")

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        try:
            if self._store.release(self.name, self.owner):
                log.info("lease %r released by %s", self.name, self.owner)
            else:
                log.warning("lease %r was no longer held by %s at release", self.name, self.owner)
        finally:
            self._session_cm.__exit__(None, None, None)
