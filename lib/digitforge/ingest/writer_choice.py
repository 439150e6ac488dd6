"""Which writer ingest uses (ingest.writer: auto | sstable | stream | cql), decided before anything is written.

- sstable: the node imports the tasks' SSTables whole over JMX (nodetool import). It keeps every row on the
  node that imports it, so it is right only for a cluster of ONE node (in cassandra.local_dc), on this
  machine (it reads the task folders: ingest.staging_dir a local path), answering on cassandra.jmx_port, in
  storage_compatibility_mode NONE.
- stream: the tasks' SSTables streamed to every replica by Cassandra's bulk loader: any number of nodes, as
  long as the storage port (cassandra.storage_port) of every node answers from here, all of them in NONE.
- cql: the connector's unlogged batches: any cluster.

auto takes the first that works here, in that order, and logs why it passed over the others; an explicit
writer that cannot work is a ConfigError (exit 2) naming the setting, before anything is written.
"""
from __future__ import annotations

import ipaddress
import logging
import socket
import time

log = logging.getLogger(__name__)
WRITERS = ("auto", "sstable", "stream", "cql")


def nodes(cfg: dict, session) -> list[str]:
    """The addresses (as the nodes know each other) of the nodes in cassandra.local_dc; without a session,
    the configured contact points."""
    from digitforge.core import connection

    if session is None:
        return connection.hosts(cfg)
    dc = cfg["cassandra"]["local_dc"]
    return sorted(str(h.broadcast_address or h.endpoint.address) for h in session.cluster.metadata.all_hosts()
                  if h.datacenter == dc)


def storage_modes(session) -> dict[str, str]:
    """Each live node's storage_compatibility_mode (NONE, UPGRADING, CASSANDRA_4): node-local settings, so
    asked of each node in turn ("unknown" for a node that does not answer)."""
    modes = {}
    for h in session.cluster.metadata.all_hosts():
        if h.is_up is False:
            continue
        modes[str(h.broadcast_address or h.endpoint.address)] = _storage_mode(session, h)
    return modes


def _storage_mode(session, host, attempts: int = 5) -> str:
    """One node's mode. Right after connecting the driver may still be opening that node's pool (a query
    pinned to it then fails at once): wait a little and ask again."""
    for attempt in range(attempts):
        try:
            row = session.execute("SELECT value FROM system_views.settings WHERE name = "
                                  "'storage_compatibility_mode'", host=host).one()
            return row.value if row else "unknown"
        except Exception as e:  # NoHostAvailable, timeouts: the node is asked again, then counted unknown
            log.debug("storage_compatibility_mode of %s: %s (attempt %d)", host, e, attempt + 1)
            time.sleep(1 + attempt)
    return "unknown"


def is_local_host(host: str) -> bool:
    """True when host is this machine (a loopback address, or a name that resolves to one)."""
    try:
        return all(ipaddress.ip_address(info[4][0]).is_loopback for info in socket.getaddrinfo(host, None))
    except (OSError, ValueError):
        return False


def port_answers(host: str, port: int, timeout: float = 2.0) -> bool:
    """True when something accepts connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def sstable_problem(cfg: dict, session, addresses: list[str]) -> str | None:
    """Why the JMX import cannot load this cluster (None: it can)."""
    from digitforge.core.storage import is_url

    c = cfg["cassandra"]
    if is_url(cfg["ingest"]["staging_dir"]):
        return (f"ingest.staging_dir is a URL ({cfg['ingest']['staging_dir']}): the node imports SSTables from a "
                "local folder only")
    if len(addresses) > 1:
        return (f"the cluster has {len(addresses)} nodes in datacenter {c['local_dc']} (cassandra.local_dc): the JMX "
                "import would keep every row on the node that imports it, not on its replicas")
    host = addresses[0] if addresses else str(c["hosts"][0])
    if not is_local_host(host):
        return f"the node {host} is not this machine (cassandra.hosts): it cannot read SSTables written here"
    from digitforge.core.connection import jmx_host

    if not port_answers(jmx_host(cfg), int(c["jmx_port"])):
        return (f"nothing answers on the node's JMX port {jmx_host(cfg)}:{c['jmx_port']} (cassandra.jmx_port) "
                "to import SSTables")
    mode = storage_modes(session).get(host, "unknown") if session is not None else "NONE"
    if mode != "NONE":
        return f"the node's storage_compatibility_mode is {mode}: it takes current-format SSTables only in NONE"
    return None


def stream_problem(cfg: dict, session, addresses: list[str]) -> str | None:
    """Why the bulk loader cannot stream to this cluster (None: it can)."""
    port = int(cfg["cassandra"]["storage_port"])
    silent = [a for a in addresses if not port_answers(a, port)]
    if silent:
        return (f"the storage port {port} (cassandra.storage_port) of {', '.join(silent)} does not answer from here: "
                "the bulk loader streams to every replica on it")
    if session is not None:
        old = {a: m for a, m in storage_modes(session).items() if a in addresses and m != "NONE"}
        if old:
            return ("storage_compatibility_mode is not NONE on " + ", ".join(f"{a} ({m})" for a, m in old.items())
                    + ": they take current-format SSTables only in NONE")
    return None


def choose_writer(cfg: dict, session) -> str:
    """`sstable`, `stream` or `cql` for this cluster, from ingest.writer (see the module's doc)."""
    from digitforge.core.config import ConfigError

    writer = cfg["ingest"]["writer"]
    if writer not in WRITERS:
        raise ConfigError(f"ingest.writer must be one of {', '.join(WRITERS)}, got {writer!r}")
    if writer == "cql":
        return writer
    addresses = nodes(cfg, session)
    why_not = []
    if writer in ("auto", "sstable"):
        problem = sstable_problem(cfg, session, addresses)
        if problem is None:
            return "sstable"
        if writer == "sstable":
            raise ConfigError(f"ingest.writer=sstable: {problem}; use --set ingest.writer=stream or =cql")
        why_not.append(f"not sstable: {problem}")
    problem = stream_problem(cfg, session, addresses)
    if problem is None:
        log.info("ingest.writer=%s: streaming SSTables to every replica (%s)%s", writer, " ".join(addresses),
                 "; " + "; ".join(why_not) if why_not else "")
        return "stream"
    if writer == "stream":
        raise ConfigError(f"ingest.writer=stream: {problem}; use --set ingest.writer=cql")
    why_not.append(f"not stream: {problem}")
    log.info("ingest.writer=auto: writing through CQL (the connector); %s", "; ".join(why_not))
    return "cql"
