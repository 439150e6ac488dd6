"""Retries of idempotent Cassandra requests (registry writes, the ingest's id scans) through transient errors:
timeouts, too few replicas for now, no host for now, as when a node has just died and the coordinators have not
yet marked it down. A few lines of our own rather than a retry library: the one policy, logged, is all we need."""
from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)


def is_transient(e: BaseException) -> bool:
    """Errors worth another try of an idempotent request: timeouts, too few replicas, no host for now."""
    from cassandra import CoordinationFailure, OperationTimedOut, ReadTimeout, Unavailable, WriteTimeout
    from cassandra.cluster import NoHostAvailable

    return isinstance(e, (ReadTimeout, WriteTimeout, Unavailable, OperationTimedOut, NoHostAvailable,
                          CoordinationFailure))


class Retrying:
    """Runs idempotent requests, retrying transient errors `attempts` times in all, waiting backoff_s,
    then twice as long each time (capped at 30 s), logging every retry."""

    def __init__(self, attempts: int = 5, backoff_s: float = 0.5):
        self.attempts, self.backoff_s = max(1, int(attempts)), float(backoff_s)

    @classmethod
    def from_config(cls, cfg: dict) -> "Retrying":
        """The registry's policy (registry.retry_attempts, registry.retry_backoff_s)."""
        rcfg = cfg.get("registry", {})
        return cls(rcfg.get("retry_attempts", 5), rcfg.get("retry_backoff_s", 0.5))

    def __call__(self, what: str, request, *args):
        wait = self.backoff_s
        for attempt in range(1, self.attempts + 1):
            try:
                return request(*args)
            except Exception as e:
                if not is_transient(e) or attempt == self.attempts:
                    raise
                log.warning("%s failed (%s: %s); retry %d of %d in %.1fs", what, type(e).__name__, e, attempt,
                            self.attempts - 1, wait)
                time.sleep(wait)
                wait = min(wait * 2, 30.0)
