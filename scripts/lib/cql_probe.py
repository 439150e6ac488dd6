"""CQL checks for the node scripts (scripts/lib/node.sh): does a node answer, and the first start of a
secured cluster.

  cql_probe.py ping HOST PORT                  exit 0: a query answered; 4: the node answered but
                                               refused the credentials; 1: no answer
  cql_probe.py secure-bootstrap HOST PORT DC RF
                                               replace the default cassandra/cassandra superuser

With DIGITFORGE_CASSANDRA_CREDENTIALS set (a secured node) every connection uses TLS, verified against
the CA in the file's ca_pem (hostname included), and logs in with its username/password. Secrets are
read from files only, never from argv, so they never show in `ps` or in logs.
"""
import logging
import os
import ssl
import sys
import time

from cassandra import AuthenticationFailed
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable
from cassandra.policies import WhiteListRoundRobinPolicy

log = logging.getLogger("cql_probe")
DEFAULT_SUPERUSER = ("cassandra", "cassandra")


def read_key_values(path):
    """`key=value` lines (the credentials file format); blank lines and # comments skipped."""
    values = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                key, sep, value = line.partition("=")
                if not sep:
                    raise SystemExit(f"{path}: line without '=': {key!r}")
                values[key.strip()] = value.strip()
    return values


def connect(host, port, creds, login=None):
    """A session on exactly this host (no peer discovery), TLS + login when creds is given."""
    only_this_host = ExecutionProfile(load_balancing_policy=WhiteListRoundRobinPolicy([host]), request_timeout=10)
    kwargs = dict(port=port, connect_timeout=3, control_connection_timeout=3, protocol_version=5,
                  execution_profiles={EXEC_PROFILE_DEFAULT: only_this_host})
    if creds is not None:
        context = ssl.create_default_context(cafile=creds["ca_pem"])  # verifies the chain and the IP SAN
        kwargs["ssl_context"] = context
        user, password = login or (creds["username"], creds["password"])
        kwargs["auth_provider"] = PlainTextAuthProvider(username=user, password=password)
    cluster = Cluster([host], **kwargs)
    try:
        return cluster, cluster.connect()
    except Exception:
        cluster.shutdown()
        raise


def auth_refused(exc):
    """True when the node answered but refused the login (as opposed to not answering at all)."""
    if isinstance(exc, AuthenticationFailed):
        return True
    errors = getattr(exc, "errors", None) or {}
    return any(isinstance(e, AuthenticationFailed) for e in errors.values())


def ping(host, port, creds):
    try:
        cluster, session = connect(host, port, creds)
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; the code says which kind
        log.debug("%s:%s: %s", host, port, exc)
        return 4 if auth_refused(exc) else 1
    try:
        session.execute("SELECT release_version FROM system.local")
        return 0
    except Exception as exc:  # noqa: BLE001
        log.debug("%s:%s: %s", host, port, exc)
        return 1
    finally:
        cluster.shutdown()


def can_login(host, port, creds, login):
    try:
        cluster, _ = connect(host, port, creds, login)
    except Exception as exc:  # noqa: BLE001
        if auth_refused(exc):
            return False
        raise
    cluster.shutdown()
    return True


def secure_bootstrap(host, port, dc, rf, creds, secrets, timeout):
    """Idempotent: digitforge (superuser, password from the credentials file) exists and the default
    cassandra role no longer logs in with 'cassandra'. system_auth gets RF = ring size first, so a login
    still works with one node down and both role rows land on every node."""
    client = (creds["username"], creds["password"])
    if can_login(host, port, creds, client):
        if not can_login(host, port, creds, DEFAULT_SUPERUSER):
            log.info("roles already set up on %s", host)
            return 0
        login = client  # an earlier run stopped half-way: finish with the new role
    else:
        # The node creates cassandra/cassandra a few seconds after start-up; wait for it.
        deadline = time.monotonic() + timeout
        while True:
            try:
                if can_login(host, port, creds, DEFAULT_SUPERUSER):
                    break
            except NoHostAvailable as exc:
                log.debug("waiting for %s: %s", host, exc)
            if time.monotonic() > deadline:
                log.error("the default superuser never logged in on %s:%s within %ss, and %s's password "
                          "is refused: were these nodes set up with other credentials? "
                          "(see DIGITFORGE_CASSANDRA_CREDENTIALS)", host, port, timeout, client[0])
                return 1
            time.sleep(2)
        login = DEFAULT_SUPERUSER
    cluster, session = connect(host, port, creds, login)
    try:
        session.execute("ALTER KEYSPACE system_auth WITH replication = "
                        "{'class': 'NetworkTopologyStrategy', %s: %s}", (dc, int(rf)))
        # %s: the driver escapes the literal client-side; DCL takes no bind markers.
        session.execute("CREATE ROLE IF NOT EXISTS %s WITH PASSWORD = %s AND LOGIN = true AND SUPERUSER = true",
                        (client[0], client[1]))
        session.execute("ALTER ROLE %s WITH PASSWORD = %s", (client[0], client[1]))
    finally:
        cluster.shutdown()
    cluster, session = connect(host, port, creds, client)
    try:
        session.execute("ALTER ROLE cassandra WITH PASSWORD = %s", (secrets["cassandra_password"],))
    finally:
        cluster.shutdown()
    # The node caches credentials for a few seconds (credentials_validity): the old password may still
    # log in right after the change, so give the cache time to expire before calling it a failure.
    deadline = time.time() + 15
    while can_login(host, port, creds, DEFAULT_SUPERUSER):
        if time.time() > deadline:
            log.error("cassandra/cassandra still logs in on %s after the password change", host)
            return 1
        time.sleep(1)
    log.info("created role %s (superuser) and replaced the default cassandra password", client[0])
    return 0


def main(argv):
    logging.basicConfig(level=os.environ.get("CQL_PROBE_LOG", "WARNING"), format="[cql_probe] %(message)s")
    logging.getLogger("cassandra").setLevel(logging.CRITICAL)  # the driver's own reconnect noise
    path = os.environ.get("DIGITFORGE_CASSANDRA_CREDENTIALS")
    creds = read_key_values(path) if path else None
    if argv[:1] == ["ping"] and len(argv) == 3:
        return ping(argv[1], int(argv[2]), creds)
    if argv[:1] == ["secure-bootstrap"] and len(argv) == 5 and creds is not None:
        secrets = read_key_values(os.environ["DIGITFORGE_CASSANDRA_SERVER_SECRETS"])
        timeout = int(os.environ.get("CASSANDRA_START_TIMEOUT", "120"))
        return secure_bootstrap(argv[1], int(argv[2]), argv[3], argv[4], creds, secrets, timeout)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
