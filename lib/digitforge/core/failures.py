"""The one top-level handler of every job and the CLI: a lost, refusing or misconfigured Cassandra cluster
ends the process with ONE error line naming the hosts and the setting behind it, never a traceback.

    if __name__ == "__main__":
        sys.exit(failures.run(main))

Exit 2: the settings or credentials are wrong (nothing answers at connect, bad password, untrusted
certificate, plain text against TLS). Exit 3: the cluster went away or timed out during the work (worth a
re-run: every write is an upsert by key, so a re-run never duplicates rows).

Failures come from two places: the Python driver (cassandra.* exceptions, mapped by connection.translate)
and the JVM (the connector inside Spark tasks, the JMX import), which reach Python as Py4J/pyspark errors
whose text names the Java exception; `java_failure` reads those.
"""
from __future__ import annotations

import logging
import re

from digitforge.core import connection
from digitforge.core.connection import CassandraConfigError, CassandraUnavailable

log = logging.getLogger("digitforge.failure")

# Java-side exceptions of the connector's driver (com.datastax.oss.driver...) and the JDK, by what they mean.
JAVA_AUTH = re.compile(r"AuthenticationException|Authentication error on|Provided username \S+ and/or password are incorrect")
JAVA_TLS = re.compile(r"SSLHandshakeException|PKIX path|unable to find valid certification path|SSLException")
JAVA_UNAVAILABLE = re.compile(
    r"AllNodesFailedException|NoNodeAvailableException|NodeUnavailableException|Could not reach any contact point|"
    r"Failed to open native connection|ClosedConnectionException|Connection has been closed|HeartbeatException|"
    r"ConnectionInitException|BusyConnectionException|BootstrappingException|OverloadedException|"
    r"(Read|Write)(Timeout|Failure)Exception|UnavailableException|DriverTimeoutException|Query timed out|"
    r"ClosedChannelException|Connection refused|Connection reset by peer|Broken pipe")


def first_line_matching(text: str, pattern: re.Pattern) -> str:
    for line in text.splitlines():
        if pattern.search(line):
            return line.strip()[:300]
    return ""


def java_failure(e: BaseException, cfg: dict | None) -> BaseException | None:
    """A Spark/Py4J failure whose cause is the connection to Cassandra, as one of connection's errors."""
    text = str(e)
    if not any(name in type(e).__module__ + type(e).__name__ for name in ("py4j", "pyspark", "Py4J", "Java")):
        return None
    where = _where(cfg)
    if line := first_line_matching(text, JAVA_AUTH):
        user = connection.credentials().username or "(none)"
        return CassandraConfigError(f"{where}: authentication failed for user {user} (Spark connector: {line}); "
                                    f"check the credentials ({connection.CREDENTIALS_ENV})")
    if line := first_line_matching(text, JAVA_TLS):
        return CassandraConfigError(f"{where}: TLS handshake failed (Spark connector: {line}); check cassandra.ssl "
                                    "and cassandra.ssl_truststore")
    if line := first_line_matching(text, JAVA_UNAVAILABLE):
        return CassandraUnavailable(f"{where}: the cluster stopped answering during the job (Spark connector: {line}); "
                                    "re-run the job once the nodes are up (writes are upserts: nothing doubles)")
    return None


def _where(cfg: dict | None) -> str:
    if not cfg:
        return "cassandra"
    return f"cassandra.hosts={','.join(connection.hosts(cfg))} port {cfg['cassandra']['port']}"


def explain(e: BaseException, cfg: dict | None) -> tuple[int, str] | None:
    """(exit code, one line) for a connection failure; None for anything else (it is not ours to hide)."""
    if cfg is not None and not isinstance(e, (CassandraConfigError, CassandraUnavailable)):
        try:
            e = connection.translate(e, cfg)
        except Exception:  # noqa: BLE001 - a driver that is not even importable: leave e as it is
            pass
    if not isinstance(e, (CassandraConfigError, CassandraUnavailable)):
        e = java_failure(e, cfg) or e
    if isinstance(e, CassandraConfigError):
        return 2, str(e)
    if isinstance(e, CassandraUnavailable):
        return 3, str(e)
    return None


def run(main, argv=None) -> int:
    """main(argv) with connection failures turned into one ERROR line and exit 2 or 3."""
    from digitforge.core import config

    try:
        return main(argv)
    except Exception as e:  # noqa: BLE001 - re-raised unless it is a connection failure
        explained = explain(e, config.last_resolved())
        if explained is None:
            raise
        code, line = explained
        log.error("%s", line.replace("\n", " "))
        return code
