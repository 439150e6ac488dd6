# One local Cassandra 5.0 node: start, wait, stop, kill, nodetool. Sourced by scripts/cassandra.sh (the
# single dev node) and scripts/ring.sh (each ring node), which describe the node in these variables
# before calling node_* functions:
#   node_name      a label for messages ("cassandra", "node2")
#   node_home      its folder: cassandra.yaml (rendered), data, commitlog, logs, cassandra.pid
#   node_address   listen and rpc address;  node_native_port (9042), node_storage_port (7000)
#   node_jmx_port  JMX, always bound to 127.0.0.1 (cassandra.jmx.local.port)
#   node_cluster, node_seeds, node_snitch, node_dc, node_rack, node_token, node_hints (true|false)
#   node_options   the topology's JVM options file;  node_heap (e.g. 1G, 768M)
#   node_secure    1: PasswordAuthenticator + CassandraAuthorizer, TLS-only CQL, JMX authentication
# The node runs from the jars `make jars` staged (DIGITFORGE_CASSANDRA_JARS, default build/jars/cassandra).
# $root (the repository) must be set before sourcing.

jars=${DIGITFORGE_CASSANDRA_JARS:-$root/build/jars/cassandra}
conf=$root/conf/cassandra
py=$root/.venv/bin/python
start_timeout=${CASSANDRA_START_TIMEOUT:-180}
# shellcheck source=scripts/lib/secure.sh
source "$root/scripts/lib/secure.sh"

log() { echo "[${log_tag:-cassandra}] $*" >&2; }

# node_pid: the node's pid when its process is alive.
node_pid() {
  local pidfile=$node_home/cassandra.pid pid
  [[ -f $pidfile ]] || return 1
  pid=$(cat "$pidfile")
  kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

# node_was_secure: whether the node in node_home was last started with SECURE=1 (recorded at start),
# so that status/wait/nodetool talk to it the way it runs, whatever SECURE says now.
node_was_secure() { [[ -f $node_home/secure ]]; }

# secure_mode HOME: the SECURE setting to use for a node home. Unset SECURE follows what the home was
# set up with (so `start-node N` or a plain `up` brings a secured node back secured); a SECURE that
# contradicts the home is refused: its data holds roles (or none) for the other mode.
secure_mode() {
  local home=$1 was=0
  [[ -f $home/secure ]] && was=1
  if [[ ! -f $home/cassandra.yaml ]]; then echo "${SECURE:-0}"; return; fi
  if [[ -n ${SECURE:-} && $SECURE != "$was" ]]; then
    log "$home was set up with SECURE=$was; run with SECURE=$was (or leave SECURE unset), or remove $home for a fresh node"
    return 1
  fi
  echo "$was"
}

# listening HOST PORT: some process listens on HOST:PORT (or on every address at PORT).
listening() {
  ss -Hltn "sport = :$2" 2>/dev/null | awk '{print $4}' \
    | grep -qxE "(${1//./\\.}|0\\.0\\.0\\.0|\\*|\\[::\\]|\\[::ffff:${1//./\\.}\\]):$2"
}

# node_ports_free: refuse (exit 1) if another process holds this node's ports; $1 names who it might be.
node_ports_free() {
  local owner=${1:-another process} p
  for p in "$node_address:$node_native_port" "$node_address:$node_storage_port" "127.0.0.1:$node_jmx_port"; do
    if listening "${p%:*}" "${p##*:}"; then
      log "$p is already in use ($owner); $node_name cannot start there."
      return 1
    fi
  done
}

require_jars() {
  compgen -G "$jars/cassandra-all-*.jar" >/dev/null \
    || { log "no Cassandra jars in $jars: run 'make jars' first (or set DIGITFORGE_CASSANDRA_JARS)"; exit 1; }
}

# render TEMPLATE... : the templates concatenated, ${NAME} filled from the environment; an unset
# name is an error, not an empty string.
render() {
  "$py" - "$@" <<'PY'
import os, re, sys
text = "".join(open(p).read() for p in sys.argv[1:])
missing = sorted({m for m in re.findall(r"\$\{([A-Z_]+)\}", text) if m not in os.environ})
if missing:
    sys.exit(f"render: {', '.join(missing)} not set for {' + '.join(sys.argv[1:])}")
sys.stdout.write(re.sub(r"\$\{([A-Z_]+)\}", lambda m: os.environ[m.group(1)], text))
PY
}

node_render_config() {
  local fragment=$conf/security-open.yaml
  (( node_secure )) && fragment=$conf/security-secure.yaml.in
  (
    umask 077   # the secured config holds the keystore password
    export CLUSTER_NAME=$node_cluster INITIAL_TOKEN=$node_token SEEDS=$node_seeds ADDRESS=$node_address \
      NATIVE_PORT=$node_native_port STORAGE_PORT=$node_storage_port SNITCH=$node_snitch \
      HINTED_HANDOFF=$node_hints \
      KEYSTORE=$secure_dir/keystore.p12
    if (( node_secure )); then
      KEYSTORE_PASSWORD=$(kv_get "$secure_dir/server-secrets" keystore_password); export KEYSTORE_PASSWORD
    fi
    render "$conf/cassandra.yaml.in" "$fragment" > "$node_home/cassandra.yaml.part" || exit 1
    mv "$node_home/cassandra.yaml.part" "$node_home/cassandra.yaml"
    printf 'dc=%s\nrack=%s\n' "$node_dc" "$node_rack" > "$node_home/cassandra-rackdc.properties"
  )
}

# read_jvm_options ARRAY FILE...: append the flags of JVM options files (comments stripped) to ARRAY.
read_jvm_options() {
  local -n into=$1; shift
  local line file
  for file in "$@"; do
    while IFS= read -r line; do
      line=${line%%#*}; line=$(echo "$line" | xargs)   # strip comments and whitespace
      [[ -n $line ]] && into+=($line)
    done < "$file"
  done
}

# node_launch: start the JVM in the background (returns at once; node_wait_up waits).
node_launch() {
  require_jars
  mkdir -p "$node_home"/{data,commitlog,saved_caches,hints,cdc_raw,logs}
  if (( node_secure )); then touch "$node_home/secure"; else rm -f "$node_home/secure"; fi
  node_render_config || exit 1
  local opts=()
  read_jvm_options opts "$conf/jvm17-server.options" "$node_options"
  opts+=("-Xms$node_heap" "-Xmx$node_heap")
  if (( node_secure )); then
    # File-based JMX authentication (Cassandra 5.0 reads the com.sun.management.jmxremote.* properties);
    # only paths on the command line, the passwords stay in the files.
    opts+=(-Dcom.sun.management.jmxremote.authenticate=true
           "-Dcom.sun.management.jmxremote.password.file=$secure_dir/jmxremote.password"
           "-Dcom.sun.management.jmxremote.access.file=$secure_dir/jmxremote.access"
           # the default superuser appears 2 s after start-up instead of 10 s: a faster first start
           -Dcassandra.superuser_setup_delay_ms=2000)
  fi
  log "starting $node_name on $node_address:$node_native_port (JMX 127.0.0.1:$node_jmx_port$( (( node_secure )) && echo ', secured')) from $jars; logs: $node_home/logs/system.log"
  (
    cd "$node_home"
    exec setsid java "${opts[@]}" "${node_extra_opts[@]}" \
      -Dcassandra.config="file://$node_home/cassandra.yaml" \
      -Dcassandra-rackdc.properties="file://$node_home/cassandra-rackdc.properties" \
      -Dlogback.configurationFile="$conf/logback.xml" \
      -Dcassandra.logdir="$node_home/logs" \
      -Dcassandra.storagedir="$node_home" \
      -Dcassandra.jmx.local.port="$node_jmx_port" \
      -Dcassandra-foreground=yes \
      -cp "$jars/*" org.apache.cassandra.service.CassandraDaemon \
      > "$node_home/logs/stdout.log" 2>&1 < /dev/null
  ) &
  echo $! > "$node_home/cassandra.pid"
}

# node_probe: 0 when a real CQL query answers (over TLS with the client credentials on a secured
# node), 4 when a secured node answers but refuses the credentials, 1 when nothing answers.
node_probe() {
  if node_was_secure; then
    DIGITFORGE_CASSANDRA_CREDENTIALS=$secure_dir/credentials "$py" "$root/scripts/lib/cql_probe.py" ping "$node_address" "$node_native_port"
  else
    env -u DIGITFORGE_CASSANDRA_CREDENTIALS "$py" "$root/scripts/lib/cql_probe.py" ping "$node_address" "$node_native_port"
  fi
}

# node_wait_up [ACCEPT]: wait until node_probe gives 0 (or ACCEPT: 4 for a secured node whose roles
# are not set up yet); fail early if the process dies.
node_wait_up() {
  local accept=${1:-0} start=$SECONDS rc
  while :; do
    rc=0; node_probe || rc=$?
    [[ $rc == 0 || $rc == "$accept" ]] && break
    if ! node_pid >/dev/null; then
      log "$node_name exited during start-up; last lines of $node_home/logs/stdout.log:"
      tail -n 30 "$node_home/logs/stdout.log" >&2; return 1
    fi
    if (( SECONDS - start > start_timeout )); then
      log "$node_name: CQL did not answer on $node_address:$node_native_port within ${start_timeout}s; see $node_home/logs/system.log"
      return 1
    fi
    sleep 1
  done
}

# node_secure_bootstrap DC RF: first start of a secured cluster (idempotent afterwards).
node_secure_bootstrap() {
  DIGITFORGE_CASSANDRA_CREDENTIALS=$secure_dir/credentials DIGITFORGE_CASSANDRA_SERVER_SECRETS=$secure_dir/server-secrets \
    CASSANDRA_START_TIMEOUT=$start_timeout CQL_PROBE_LOG=INFO \
    "$py" "$root/scripts/lib/cql_probe.py" secure-bootstrap "$node_address" "$node_native_port" "$1" "$2"
}

# node_stop: a clean stop (SIGTERM: Cassandra drains and flushes on shutdown), SIGKILL after 90 s.
node_stop() {
  local pid
  if ! pid=$(node_pid); then log "$node_name not running"; rm -f "$node_home/cassandra.pid"; return 0; fi
  log "stopping $node_name (pid $pid)"
  kill -TERM "$pid"
  for _ in $(seq 1 90); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$node_home/cassandra.pid"; log "$node_name stopped"; return 0; }
    sleep 1
  done
  log "$node_name still running after 90s; sending SIGKILL"; kill -KILL "$pid" || true
  rm -f "$node_home/cassandra.pid"
}

# node_kill: kill -9, as a crash would (fault drills); the pid file stays out of the way.
node_kill() {
  local pid
  if ! pid=$(node_pid); then log "$node_name not running"; return 0; fi
  kill -KILL "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
  rm -f "$node_home/cassandra.pid"
  log "$node_name killed (SIGKILL, pid $pid)"
}

# node_tool ARGS...: NodeTool (cassandra-all) against this node's JMX, with the JMX credentials from
# the password file when the node is secured.
node_tool() {
  local auth=()
  if node_was_secure; then
    auth=(-u "$(kv_get "$secure_dir/credentials" jmx_username)" -pwf "$secure_dir/nodetool.password")
  fi
  local server=() jpms=() opt
  read_jvm_options server "$conf/jvm17-server.options"
  for opt in "${server[@]}"; do [[ $opt == --add-* || $opt == *=ALL-UNNAMED ]] && jpms+=("$opt"); done
  java -Xmx128m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC "${jpms[@]}" -cp "$jars/*" \
    -Dlogback.configurationFile="$conf/logback-tools.xml" \
    org.apache.cassandra.tools.NodeTool -h 127.0.0.1 -p "$node_jmx_port" "${auth[@]}" "$@"
}
