# Security material for SECURE=1 nodes (sourced by scripts/lib/node.sh). Everything lives in one
# folder outside git, $secure_dir (DIGITFORGE_SECURE_DIR, default var/secure), mode 700, made once and
# shared by the secured single node and the secured ring:
#   ca.p12, ca.pem           a local CA (PKCS12 store for signing; PEM for the Python driver and cqlsh)
#   keystore.p12, node.pem   the nodes' key and certificate (signed by the CA; SAN = every loopback
#                            address in use, re-issued when a new one shows up)
#   truststore.p12           the CA for JVM clients (the Spark connector)
#   credentials              the client's key=value file (DIGITFORGE_CASSANDRA_CREDENTIALS), mode 600
#   server-secrets           keystore and cassandra-role passwords, read by the node scripts only
#   jmxremote.password/.access, nodetool.password   JMX authentication (server side / NodeTool -pwf)
#   cqlshrc, cqlsh-credentials                      for `cqlsh --cqlshrc var/secure/cqlshrc --ssl`
# Passwords go to keytool through the environment (-storepass:env), never through argv.

secure_dir=${DIGITFORGE_SECURE_DIR:-$root/var/secure}
secure_default_sans="127.0.0.1 127.0.0.2 127.0.0.3"

random_secret() { head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24; }

# kv_get FILE KEY: the value of KEY in a key=value file.
kv_get() { sed -n "s/^$2=//p" "$1" | head -n 1; }

secure_keytool() {
  keytool "$@" >/dev/null 2>"$secure_dir/keytool.err" \
    || { log "keytool $1 failed: $(cat "$secure_dir/keytool.err")"; exit 1; }
  rm -f "$secure_dir/keytool.err"
}

# secure_node_cert ADDRESS...: (re)issue the nodes' certificate for these IPs (plus localhost).
secure_node_cert() {
  local san="dns:localhost" ip
  for ip in "$@"; do san+=",ip:$ip"; done
  rm -f "$secure_dir/keystore.p12"
  export KS; KS=$(kv_get "$secure_dir/server-secrets" keystore_password)
  secure_keytool -genkeypair -alias node -keyalg RSA -keysize 2048 -validity 825 -dname "CN=digitforge cassandra" \
    -ext "SAN=$san" -keystore "$secure_dir/keystore.p12" -storetype PKCS12 -storepass:env KS
  secure_keytool -certreq -alias node -keystore "$secure_dir/keystore.p12" -storepass:env KS -file "$secure_dir/node.csr"
  secure_keytool -gencert -alias ca -keystore "$secure_dir/ca.p12" -storepass:env KS -infile "$secure_dir/node.csr" \
    -outfile "$secure_dir/node.pem" -rfc -validity 825 -ext "SAN=$san" \
    -ext ku:c=digitalSignature,keyEncipherment -ext eku=serverAuth,clientAuth
  secure_keytool -importcert -noprompt -alias ca -file "$secure_dir/ca.pem" -keystore "$secure_dir/keystore.p12" -storepass:env KS
  secure_keytool -importcert -alias node -file "$secure_dir/node.pem" -keystore "$secure_dir/keystore.p12" -storepass:env KS
  unset KS
  rm -f "$secure_dir/node.csr"
  printf '%s\n' "$@" > "$secure_dir/san-ips"
  log "issued the node certificate for $* (signed by $secure_dir/ca.pem)"
}

# secure_ensure ADDRESS...: the material exists and the certificate covers these addresses.
secure_ensure() {
  command -v keytool >/dev/null || { log "keytool not found (it comes with the JDK)"; exit 1; }
  (umask 077; mkdir -p "$secure_dir"); chmod 700 "$secure_dir"
  if [[ ! -f $secure_dir/credentials ]]; then
    log "creating keystore, truststore and credentials in $secure_dir"
    local user=${DIGITFORGE_CASSANDRA_SECURE_USER:-digitforge} jmx_password
    jmx_password=$(random_secret)
    (
      umask 077
      printf 'keystore_password=%s\ncassandra_password=%s\n' "$(random_secret)" "$(random_secret)" \
        > "$secure_dir/server-secrets"
      local ts; ts=$(random_secret)
      export KS TS=$ts; KS=$(kv_get "$secure_dir/server-secrets" keystore_password)
      rm -f "$secure_dir"/{ca.p12,ca.pem,truststore.p12}
      secure_keytool -genkeypair -alias ca -keyalg RSA -keysize 2048 -validity 825 -dname "CN=digitforge dev CA" \
        -ext bc:c -ext ku:c=keyCertSign,cRLSign -keystore "$secure_dir/ca.p12" -storetype PKCS12 -storepass:env KS
      secure_keytool -exportcert -rfc -alias ca -keystore "$secure_dir/ca.p12" -storepass:env KS -file "$secure_dir/ca.pem"
      secure_keytool -importcert -noprompt -alias ca -file "$secure_dir/ca.pem" \
        -keystore "$secure_dir/truststore.p12" -storetype PKCS12 -storepass:env TS
      printf '%s readwrite\n' "$user" > "$secure_dir/jmxremote.access"
      printf '%s %s\n' "$user" "$jmx_password" > "$secure_dir/jmxremote.password"
      printf '%s %s\n' "$user" "$jmx_password" > "$secure_dir/nodetool.password"
      local password; password=$(random_secret)
      printf '[plain_text_auth]\nusername = %s\npassword = %s\n' "$user" "$password" > "$secure_dir/cqlsh-credentials"
      printf '[authentication]\ncredentials = %s\n\n[ssl]\ncertfile = %s\nvalidate = true\n' \
        "$secure_dir/cqlsh-credentials" "$secure_dir/ca.pem" > "$secure_dir/cqlshrc"
      # Written last: its presence means the rest is complete.
      cat > "$secure_dir/credentials.part" <<EOF
# digitforge Cassandra client credentials (made by scripts/lib/secure.sh; keep out of git).
# Use: export DIGITFORGE_CASSANDRA_CREDENTIALS=$secure_dir/credentials
username=$user
password=$password
ca_pem=$secure_dir/ca.pem
truststore=$secure_dir/truststore.p12
truststore_password=$ts
truststore_type=PKCS12
jmx_username=$user
jmx_password=$jmx_password
jmx_password_file=$secure_dir/nodetool.password
cqlshrc=$secure_dir/cqlshrc
EOF
      mv "$secure_dir/credentials.part" "$secure_dir/credentials"
    )
  fi
  # The node certificate must name every address a client connects to (the driver checks the SAN).
  local wanted=() ip
  for ip in $secure_default_sans "$@"; do
    [[ " ${wanted[*]} " == *" $ip "* ]] || wanted+=("$ip")
  done
  if [[ ! -f $secure_dir/keystore.p12 ]] || ! all_listed "$secure_dir/san-ips" "${wanted[@]}"; then
    local had=(); [[ -f $secure_dir/san-ips ]] && mapfile -t had < "$secure_dir/san-ips"
    for ip in "${had[@]}"; do [[ " ${wanted[*]} " == *" $ip "* ]] || wanted+=("$ip"); done
    secure_node_cert "${wanted[@]}"
  fi
  chmod 600 "$secure_dir"/*
  # The JDK refuses a JMX password file that others can read; the access file needs no secret.
  chmod 400 "$secure_dir/jmxremote.password"
}

# all_listed FILE WORD...: every WORD is a line of FILE.
all_listed() {
  local file=$1 w; shift
  [[ -f $file ]] || return 1
  for w in "$@"; do grep -qxF "$w" "$file" || return 1; done
}

secure_print_usage() {
  log "secured: TLS required on the native port, logins checked, JMX needs a password. A client uses:"
  log "  export DIGITFORGE_CASSANDRA_CREDENTIALS=$secure_dir/credentials"
  log "  cqlsh: $root/.venv/bin/cqlsh --cqlshrc $secure_dir/cqlshrc --ssl HOST"
  log "  nodetool: -u $(kv_get "$secure_dir/credentials" jmx_username) -pwf $secure_dir/nodetool.password"
}
