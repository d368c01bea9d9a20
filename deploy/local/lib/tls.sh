# shellcheck shell=bash
# Local TLS and SASL material, so the stack serves the same secured transports a
# production deployment uses (Kafka SASL_SSL with SCRAM, Postgres TLS) beside the
# plain ones. A private CA signs one server certificate for 127.0.0.1/localhost;
# all of it lives under $GAVEL_STACK_DIR/tls and is made once. Sourced by stack.sh.

TLS_DIR=$GAVEL_STACK_DIR/tls
TLS_CA=$TLS_DIR/ca.crt
TLS_CERT=$TLS_DIR/server.crt
TLS_KEY=$TLS_DIR/server.key
# Kafka's PEM keystore: the PKCS#8 key followed by the certificate chain.
TLS_KAFKA_KEYSTORE=$TLS_DIR/kafka-keystore.pem
GAVEL_KAFKA_SASL_SSL_PORT=${GAVEL_KAFKA_SASL_SSL_PORT:-9094}
# The local stack's admin SCRAM user (a dev default, like Postgres' gavel/gavel): a
# super user, so tests can run a private pipeline over SASL_SSL. Each role has a
# user of its own with only its rights (lib/access.sh).
GAVEL_LOCAL_SCRAM_USER=${GAVEL_LOCAL_SCRAM_USER:-gavel}
GAVEL_LOCAL_SCRAM_PASSWORD=${GAVEL_LOCAL_SCRAM_PASSWORD:-gavel-local-scram}

# The certificates, made when missing or expiring within a day.
tls_ensure() {
  if [[ -s $TLS_CA && -s $TLS_KAFKA_KEYSTORE ]] &&
    openssl x509 -checkend 86400 -noout -in "$TLS_CERT" >/dev/null 2>&1; then
    return 0
  fi
  command -v openssl >/dev/null 2>&1 || die "openssl is needed to make the local TLS certificates"
  log "making local TLS certificates in $TLS_DIR"
  rm -rf "$TLS_DIR"
  mkdir -p "$TLS_DIR"
  chmod 755 "$TLS_DIR"
  local out=$LOG_DIR/tls.log
  {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
      -subj "/CN=gavel local stack CA" -keyout "$TLS_DIR/ca.key" -out "$TLS_CA" &&
      openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -subj "/CN=localhost" -keyout "$TLS_KEY" -out "$TLS_DIR/server.csr" &&
      printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$TLS_DIR/server.ext" &&
      openssl x509 -req -in "$TLS_DIR/server.csr" -CA "$TLS_CA" -CAkey "$TLS_DIR/ca.key" \
        -CAcreateserial -days 825 -extfile "$TLS_DIR/server.ext" -out "$TLS_CERT" &&
      openssl pkcs8 -topk8 -nocrypt -in "$TLS_KEY" -out "$TLS_DIR/server.pk8" &&
      cat "$TLS_DIR/server.pk8" "$TLS_CERT" "$TLS_CA" >"$TLS_KAFKA_KEYSTORE"
  } >"$out" 2>&1 || die "making the local TLS certificates failed; see $out"
  chmod 600 "$TLS_DIR"/*.key "$TLS_DIR/server.pk8" "$TLS_KAFKA_KEYSTORE"
  chmod 644 "$TLS_CA" "$TLS_CERT"
}

# The broker settings of the SASL_SSL listener (appended to server.properties).
tls_kafka_properties() {
  local jaas=org.apache.kafka.common.security.scram.ScramLoginModule
  cat <<EOF
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=$jaas required;
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location=$TLS_KAFKA_KEYSTORE
EOF
}

# The SCRAM user, made once per KRaft cluster (credentials live in its metadata).
tls_kafka_scram_user() {
  local marker=$KAFKA_DIR/data/.gavel-scram-user
  [[ -f $marker && $(cat "$marker") == "$GAVEL_LOCAL_SCRAM_USER:$GAVEL_LOCAL_SCRAM_PASSWORD" ]] && return 0
  local pw=$GAVEL_LOCAL_SCRAM_PASSWORD
  kafka_tool kafka.admin.ConfigCommand --bootstrap-server "127.0.0.1:$GAVEL_KAFKA_PORT" \
    --command-config "$KAFKA_DIR/tools.properties" --alter --entity-type users \
    --entity-name "$GAVEL_LOCAL_SCRAM_USER" \
    --add-config "SCRAM-SHA-512=[password=$pw]" \
    >>"$LOG_DIR/kafka-tools.log" 2>&1 || die "creating the SCRAM user failed; see $LOG_DIR/kafka-tools.log"
  echo "$GAVEL_LOCAL_SCRAM_USER:$GAVEL_LOCAL_SCRAM_PASSWORD" >"$marker"
  log "kafka SCRAM user $GAVEL_LOCAL_SCRAM_USER ready on SASL_SSL://127.0.0.1:$GAVEL_KAFKA_SASL_SSL_PORT"
}

# Postgres serves TLS from copies it owns (it refuses a key others can read).
tls_postgres_files() {
  as_pg tee "$PG_DATA/server.key" <"$TLS_KEY" >/dev/null
  as_pg chmod 600 "$PG_DATA/server.key"
  as_pg tee "$PG_DATA/server.crt" <"$TLS_CERT" >/dev/null
}

# What a worker sets to use the secured transports of this stack (`stack.sh tls-env`).
tls_env() {
  cat <<EOF
GAVEL_KAFKA_BOOTSTRAP=127.0.0.1:$GAVEL_KAFKA_SASL_SSL_PORT
GAVEL_KAFKA_SECURITY_PROTOCOL=SASL_SSL
GAVEL_KAFKA_SASL_MECHANISM=SCRAM-SHA-512
GAVEL_KAFKA_SASL_USERNAME=$GAVEL_LOCAL_SCRAM_USER
GAVEL_KAFKA_SASL_PASSWORD=$GAVEL_LOCAL_SCRAM_PASSWORD
GAVEL_KAFKA_SSL_CA_LOCATION=$TLS_CA
GAVEL_POSTGRES_URL=postgres://gavel:gavel@127.0.0.1:$GAVEL_PG_PORT/gavel?sslmode=require
GAVEL_POSTGRES_SSL_ROOT_CERT=$TLS_CA
EOF
}
