"""A lease in Cassandra: one holder at a time, taken with a lightweight transaction, kept alive by a TTL.

    with Lease(cfg, keyspace, "retrain", ttl_s=3600):   # raises LeaseHeld if another run holds it
        ...                                             # renewed every ttl/3 while the block runs

acquire  = INSERT ... IF NOT EXISTS USING TTL ttl  (Paxos: of two concurrent runs exactly one wins)
renew    = UPDATE ... USING TTL ttl ... IF owner = me
release  = DELETE ... IF owner = me
A run that crashes never releases; its row expires after the TTL, so it cannot block the next night.

Fencing: a successful renew (`check()`) restarts the TTL, so for ttl_s after it no other owner can take
the lease; a holder calls check() right before each of its writes. An LWT whose reply timed out may or
may not have applied: the lease is then read back with SERIAL consistency (which finishes any Paxos round
in flight) and decided from what it says; a renewal that cannot be confirmed counts as lost (fail safe).
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


def _timed_out(e: BaseException) -> bool:
    """An LWT whose outcome is unknown: the coordinator (WriteTimeout) or the driver (OperationTimedOut)
    gave up waiting, but the proposal may still have been accepted."""
    from cassandra import OperationTimedOut, WriteTimeout

    return isinstance(e, (WriteTimeout, OperationTimedOut))


class LeaseStore:
    """The LWT statements on `<keyspace>.leases` over an open cassandra-driver session."""

    def __init__(self, s, keyspace: str):
        self.s, self.keyspace = s, keyspace

    def acquire(self, name: str, owner: str, ttl_s: int, acquired_at: datetime) -> tuple[bool, dict | None]:
        """(True, None) if taken, else (False, the current holder: owner, acquired_at, seconds left).
        A timed-out attempt is decided by reading the lease back: ours -> taken, free -> tried again."""
        for attempt in range(3):
            try:
                rs = self.s.execute(f"INSERT INTO {self.keyspace}.leases (name, owner, acquired_at) VALUES (%s, %s, %s) "
                                    f"IF NOT EXISTS USING TTL {int(ttl_s)}", (name, owner, acquired_at))
            except Exception as e:
                if not _timed_out(e):
                    raise
                holder = self.holder(name)
                log.warning("taking lease %r timed out (%s); read back: %s", name, type(e).__name__,
                            holder["owner"] if holder else "free")
                if holder is None:
                    continue
                return (True, None) if holder["owner"] == owner else (False, holder)
            if rs.was_applied:
                return True, None
            return False, self.holder(name)
        raise LeaseHeld(f"lease {self.keyspace}.leases[{name!r}]: taking it timed out 3 times; try again")

    def renew(self, name: str, owner: str, ttl_s: int, acquired_at: datetime) -> bool:
        """Restart the TTL of both columns (a TTL is per cell), if `owner` still holds the lease."""
        rs = self.s.execute(f"UPDATE {self.keyspace}.leases USING TTL {int(ttl_s)} SET owner = %s, acquired_at = %s "
                            "WHERE name = %s IF owner = %s", (owner, acquired_at, name, owner))
        return bool(rs.was_applied)

    def release(self, name: str, owner: str) -> bool:
        """Delete the lease if `owner` still holds it; True when it did. A timed-out attempt is decided
        by reading the lease back (still ours: once more)."""
        for _ in range(2):
            try:
                rs = self.s.execute(f"DELETE FROM {self.keyspace}.leases WHERE name = %s IF owner = %s", (name, owner))
                return bool(rs.was_applied)
            except Exception as e:
                if not _timed_out(e):
                    raise
                holder = self.holder(name)
                if holder is None or holder["owner"] != owner:
                    return holder is None
        return False

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

    def check(self, before: str = "writing") -> None:
        """Raise LeaseLost unless this run still holds the lease; call it right before each write. The
        renewal restarts the TTL, so no other owner can take the lease for ttl_s after it returns. A
        renewal whose reply timed out is tried again; one that cannot be confirmed counts as lost."""
        held = not self.lost.is_set() and self._renew_confirmed()
        if not held:
            self.lost.set()
            raise LeaseLost(f"lease {self.keyspace}.leases[{self.name!r}] is no longer held by {self.owner} "
                            f"(before {before}): another run may own it now")
        log.info("lease %r held by %s before %s", self.name, self.owner, before)

    def _renew_confirmed(self, attempts: int = 3) -> bool:
        for _ in range(attempts):
            try:
                return self._store.renew(self.name, self.owner, self.ttl_s, self.acquired_at)
            except Exception as e:
                if not _timed_out(e):
                    raise
                log.warning("renewing lease %r timed out (%s); trying again", self.name, type(e).__name__)
        return False

    def __exit__(self, *exc) -> None:
        """Release the lease. A release that fails is logged, never raised: it must not hide the error
        that ended the block (if any), and the lease expires by its TTL anyway."""
        self._stop.set()
        if self._thread:
            self._thread.join()
        try:
            if self._store.release(self.name, self.owner):
                log.info("lease %r released by %s", self.name, self.owner)
            else:
                log.warning("lease %r was no longer held by %s at release", self.name, self.owner)
        except Exception as e:
            log.warning("could not release lease %r (%s: %s); it expires by its TTL within %d s",
                        self.name, type(e).__name__, e, self.ttl_s)
        try:
            self._session_cm.__exit__(None, None, None)
        except Exception as e:
            log.warning("closing the lease's session failed: %s", e)
