"""Connections to Cassandra: the one place where a driver Cluster, and the connector's Spark settings, are
made from the `cassandra` config section, so the jobs, the CLI, the tests and Spark all reach the same
cluster the same way.

    cassandra:
      hosts: [127.0.0.1]            contact points (any live subset of the ring will do)
      port: 9042
      local_dc: datacenter1         DC-aware, token-aware routing; keyspaces replicate into this DC
      replication_factor: 1         NetworkTopologyStrategy {local_dc: RF} (3 on the ring)
      consistency: LOCAL_QUORUM     reads and writes, driver and connector alike
      serial_consistency: LOCAL_SERIAL   lightweight transactions (aliases, the retrain lease)
      ssl: false                    TLS to the native port; the CA from ssl_ca or the credentials file

Secrets never live in the config (it is stored with every model): user name and password come from
DIGITFORGE_CASSANDRA_USERNAME / DIGITFORGE_CASSANDRA_PASSWORD, or from the `key=value` file named by
DIGITFORGE_CASSANDRA_CREDENTIALS (what `make cassandra-up SECURE=1` writes).
"""
from __future__ import annotations

import ipaddress
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from digitforge.core.config import ConfigError

log = logging.getLogger(__name__)

CREDENTIALS_ENV = "DIGITFORGE_CASSANDRA_CREDENTIALS"
USERNAME_ENV, PASSWORD_ENV = "DIGITFORGE_CASSANDRA_USERNAME", "DIGITFORGE_CASSANDRA_PASSWORD"


class CassandraUnavailable(RuntimeError):
    """The cluster could not serve a request (nodes down, timeouts): worth a re-run, exit 3."""


class CassandraConfigError(ConfigError):
    """The `cassandra` settings or credentials are wrong (nothing answers, bad password, untrusted
    certificate, unknown datacenter, RF too large): exit 2."""


@dataclass(frozen=True)
class Credentials:
    username: str | None = None
    password: str | None = None
    truststore: str | None = None           # JKS, for the connector and the JVM tools
    truststore_password: str | None = None
    truststore_type: str = "JKS"            # JKS or PKCS12 (what the secured dev nodes' keytool makes)
    ca_pem: str | None = None               # PEM, for the Python driver and cqlsh
    jmx_username: str | None = None
    jmx_password: str | None = None
    source: str = "none"

    def __repr__(self) -> str:  # never print a secret, not even in a traceback's locals
        return f"Credentials(username={self.username!r}, source={self.source!r})"


def read_key_values(path: Path) -> dict[str, str]:
    """`key=value` lines; blank lines and `#` comments skipped."""
    out = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise CassandraConfigError(f"{path}, line {n}: not of the form key=value ({CREDENTIALS_ENV})")
        out[key.strip()] = value.strip()
    return out


def credentials(env: dict | None = None) -> Credentials:
    """The credentials from the environment (see the module's doc); no credentials is fine for a node
    without authentication."""
    env = os.environ if env is None else env
    values: dict[str, str] = {}
    source = "none"
    if env.get(CREDENTIALS_ENV):
        path = Path(env[CREDENTIALS_ENV]).expanduser()
        if not path.is_file():
            raise CassandraConfigError(f"{CREDENTIALS_ENV}={path}: no such file")
        values, source = read_key_values(path), str(path)
    if env.get(USERNAME_ENV):
        values.update(username=env[USERNAME_ENV], password=env.get(PASSWORD_ENV, ""))
        source = f"{USERNAME_ENV}/{PASSWORD_ENV}"
    known = {f for f in Credentials.__dataclass_fields__ if f != "source"}
    return Credentials(source=source, **{k: v for k, v in values.items() if k in known and v != ""})


def hosts(cfg: dict) -> list[str]:
    return [str(h) for h in cfg["cassandra"]["hosts"]]


def jmx_host(cfg: dict) -> str:
    """Where the node's JMX answers: 127.0.0.1 for a node on this machine (the project's node scripts bind
    JMX to 127.0.0.1 only, cassandra.jmx.local.port, whatever the node's own address: each node has its own
    cassandra.jmx_port), else the node's address."""
    host = hosts(cfg)[0]
    try:
        local = ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = host == "localhost"
    return "127.0.0.1" if local else host


def replication(cfg: dict) -> str:
    """The CQL replication map of every keyspace digitforge creates."""
    c = cfg["cassandra"]
    return f"{{'class': 'NetworkTopologyStrategy', '{c['local_dc']}': {int(c['replication_factor'])}}}"


def ssl_context(cfg: dict, creds: Credentials):
    """An SSLContext trusting the configured CA (cassandra.ssl_ca, else the credentials file's ca_pem),
    checking the node's certificate and address; None when cassandra.ssl is off."""
    import ssl

    c = cfg["cassandra"]
    if not c.get("ssl"):
        return None
    ca = c.get("ssl_ca") or creds.ca_pem
    if not ca:
        raise CassandraConfigError("cassandra.ssl is on but no CA certificate is set: set cassandra.ssl_ca "
                                   f"or ca_pem in the file named by {CREDENTIALS_ENV}")
    if not Path(ca).is_file():
        raise CassandraConfigError(f"cassandra.ssl_ca {ca}: no such file")
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = True  # the driver then passes each node's address as server_hostname
    return ctx


def consistency(name: str, setting: str):
    from cassandra import ConsistencyLevel

    try:
        return ConsistencyLevel.name_to_value[name.upper()]
    except KeyError:
        known = ", ".join(sorted(ConsistencyLevel.name_to_value))
        raise CassandraConfigError(f"{setting}={name!r} is not a consistency level ({known})") from None


def cluster(cfg: dict):
    """A driver Cluster for cfg's cassandra section (not yet connected)."""
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy

    c = cfg["cassandra"]
    creds = credentials()
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=c["local_dc"])),
        consistency_level=consistency(c["consistency"], "cassandra.consistency"),
        serial_consistency_level=consistency(c["serial_consistency"], "cassandra.serial_consistency"),
        request_timeout=float(c["request_timeout_s"]))
    auth = PlainTextAuthProvider(creds.username, creds.password or "") if creds.username else None
    return Cluster(hosts(cfg), port=int(c["port"]), protocol_version=5, auth_provider=auth,
                   ssl_context=ssl_context(cfg, creds), execution_profiles={EXEC_PROFILE_DEFAULT: profile},
                   connect_timeout=float(c["connect_timeout_s"]),
                   control_connection_timeout=float(c["connect_timeout_s"]))


def check_datacenter(cl, cfg: dict) -> None:
    """cassandra.local_dc must be a datacenter of the cluster: the DC-aware policy would otherwise send
    every request nowhere."""
    dcs = sorted({h.datacenter for h in cl.metadata.all_hosts() if h.datacenter})
    if dcs and cfg["cassandra"]["local_dc"] not in dcs:
        raise CassandraConfigError(f"cassandra.local_dc={cfg['cassandra']['local_dc']!r} is not a datacenter of the "
                                   f"cluster at {', '.join(hosts(cfg))} (it has: {', '.join(dcs)})")


def nodes_in_local_dc(cl, cfg: dict) -> int:
    return sum(1 for h in cl.metadata.all_hosts() if h.datacenter == cfg["cassandra"]["local_dc"])


@contextmanager
def session(cfg: dict, keyspace: str | None = None):
    """A connected driver session (optionally in keyspace), shut down on exit. Connection failures
    become one CassandraConfigError/CassandraUnavailable naming the hosts and the setting."""
    cl = cluster(cfg)
    try:
        try:
            s = cl.connect()
        except Exception as e:
            check_datacenter(cl, cfg)  # an unknown local_dc looks like "no host available": say which
            raise translate(e, cfg, connecting=True) from e
        check_datacenter(cl, cfg)
        if keyspace:
            try:
                s.set_keyspace(keyspace)
            except Exception as e:
                raise translate(e, cfg, connecting=True) from e
        yield s
    finally:
        cl.shutdown()


def translate(e: BaseException, cfg: dict, connecting: bool = False) -> BaseException:
    """A driver exception as one clear error naming the setting behind it (others are returned as they are).
    connecting: raised while opening the session (nothing answering then is a settings problem, exit 2);
    otherwise the cluster went away during the work (exit 3), unless it refused the login or the TLS."""
    import ssl

    from cassandra import (AuthenticationFailed, OperationTimedOut, ReadTimeout, Unavailable,
                           WriteTimeout)
    from cassandra.cluster import NoHostAvailable

    where = f"cassandra.hosts={','.join(hosts(cfg))} port {cfg['cassandra']['port']}"
    if isinstance(e, (CassandraConfigError, CassandraUnavailable)):
        return e
    if isinstance(e, NoHostAvailable):
        causes = list(e.errors.values() if isinstance(e.errors, dict) else e.errors or [])
        # Nodes that answered but could not serve the consistency level (too few replicas up): the cluster
        # is there, the request is worth a re-run, not a configuration error.
        if any(isinstance(c, (Unavailable, ReadTimeout, WriteTimeout, OperationTimedOut)) for c in causes):
            return CassandraUnavailable(f"{where}: {causes[0]} (cassandra.consistency="
                                        f"{cfg['cassandra']['consistency']})")
        if any(isinstance(c, AuthenticationFailed) for c in causes):
            return CassandraConfigError(f"{where}: authentication failed for user "
                                        f"{credentials().username or '(none)'} (credentials from "
                                        f"{credentials().source}; see {CREDENTIALS_ENV})")
        if any(isinstance(c, ssl.SSLError) or "ssl" in str(c).lower() or "certificate" in str(c).lower() for c in causes):
            return CassandraConfigError(f"{where}: TLS handshake failed ({causes[0]}); check cassandra.ssl and "
                                        "cassandra.ssl_ca")
        first = causes[0] if causes else e
        if not cfg["cassandra"].get("ssl") and any("reset by peer" in str(c) or "ConnectionShutdown" in type(c).__name__
                                                  for c in causes):
            return CassandraConfigError(f"{where}: the node closed the plain-text connection ({first}): it requires "
                                        "TLS; set cassandra.ssl=true (DIGITFORGE_CASSANDRA=secure) and the CA")
        if not connecting:
            return CassandraUnavailable(f"{where}: no node answered during the work ({first}); re-run once the "
                                        "cluster is up (writes are upserts: nothing doubles)")
        return CassandraConfigError(f"{where}: no node answered ({first}); is the cluster up and are "
                                    "cassandra.hosts / cassandra.port right?")
    if isinstance(e, AuthenticationFailed):
        return CassandraConfigError(f"{where}: authentication failed ({e})")
    if isinstance(e, (Unavailable, ReadTimeout, WriteTimeout, OperationTimedOut)):
        return CassandraUnavailable(f"{where}: {type(e).__name__}: {e} (cassandra.consistency="
                                    f"{cfg['cassandra']['consistency']})")
    return e


def connector_conf(cfg: dict) -> dict[str, str]:
    """spark-cassandra-connector settings for cfg: the same hosts, DC, consistency, credentials and TLS as
    the driver's. Applied to every SparkSession digitforge builds (the `cass` catalog takes them too)."""
    c, creds = cfg["cassandra"], credentials()
    conf = {
        "spark.cassandra.connection.host": ",".join(hosts(cfg)),
        "spark.cassandra.connection.port": str(c["port"]),
        "spark.cassandra.connection.localDC": str(c["local_dc"]),
        "spark.cassandra.input.consistency.level": str(c["consistency"]).upper(),
        "spark.cassandra.output.consistency.level": str(c["consistency"]).upper(),
    }
    if creds.username:
        conf["spark.cassandra.auth.username"] = creds.username
        conf["spark.cassandra.auth.password"] = creds.password or ""
    if c.get("ssl"):
        truststore = c.get("ssl_truststore") or creds.truststore
        if not truststore:
            raise CassandraConfigError("cassandra.ssl is on but no truststore is set for Spark: set "
                                       f"cassandra.ssl_truststore or truststore in the file named by {CREDENTIALS_ENV}")
        conf["spark.cassandra.connection.ssl.enabled"] = "true"
        conf["spark.cassandra.connection.ssl.trustStore.path"] = truststore
        conf["spark.cassandra.connection.ssl.trustStore.type"] = creds.truststore_type
        if creds.truststore_password:
            conf["spark.cassandra.connection.ssl.trustStore.password"] = creds.truststore_password
    return conf


def write_private(path: str | Path, text: str) -> None:
    """Write text to a file only its owner can read (connector settings may hold the password)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)
