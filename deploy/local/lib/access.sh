# shellcheck shell=bash
# Each role's credentials on the local stack, from the access table (deploy/access.txt):
# a GAVEL_CONFIG file per role, $GAVEL_STACK_DIR/credentials/<role>.env, holding its
# Kafka SCRAM user (gavel-<role>, over SASL_SSL), its Postgres role (gavel_<role>, over
# TLS; the schema owner gavel for roles that own it) and its registry credential
# (reader or registrar, through the TLS proxy of lib/registry_proxy.sh). Passwords are
# random, made once, kept in the same directory (0700). Postgres roles are made here;
# the Kafka users and ACLs by `gavel access apply --credentials <dir>` (deploy/local/demo.sh).
# Sourced by stack.sh.

ACCESS_TABLE=$HERE/../access.txt
CRED_DIR=$GAVEL_STACK_DIR/credentials

# The roles holding a right of system $1 (kafka, postgres, registry), in table order.
access_roles() {
  awk -v sys="$1" '{ sub(/#.*/, "") } NF == 4 && $2 == sys && !seen[$1]++ { print $1 }' "$ACCESS_TABLE"
}

# The registry right (read or write) of role $1, or nothing.
access_registry_right() {
  awk -v role="$1" '{ sub(/#.*/, "") } NF == 4 && $1 == role && $2 == "registry" { print $4 }' "$ACCESS_TABLE"
}

# True when role $1 owns a Postgres schema (runs migrations or rebuilds).
access_owns_schema() {
  awk -v role="$1" '{ sub(/#.*/, "") } NF == 4 && $1 == role && $2 == "postgres" && $4 == "owner" { found = 1 } END { exit !found }' "$ACCESS_TABLE"
}

# The password kept under name $1, made on first use.
access_password() {
  local file=$CRED_DIR/$1.password
  if [[ ! -s $file ]]; then
    (umask 077 && openssl rand -hex 24 >"$file")
  fi
  cat "$file"
}

access_pg_role() { echo "gavel_${1//-/_}"; }

# Login roles for every role with Postgres rights (grants come from `gavel migrate`).
access_postgres_roles() {
  local role pg sql=""
  for role in $(access_roles postgres); do
    access_owns_schema "$role" && continue
    pg=$(access_pg_role "$role")
    sql+="SELECT 'CREATE ROLE $pg' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$pg')\\gexec
ALTER ROLE $pg WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '$(access_password "$role")';
"
  done
  printf '%s' "$sql" | pg_psql -d postgres >/dev/null
}

# The GAVEL_CONFIG file of role $1 on stdout.
access_role_env() {
  local role=$1 right password
  password=$(access_password "$role")
  echo "# Role $role on the local stack (deploy/local/lib/access.sh): GAVEL_CONFIG=<this file>"
  if access_roles kafka | grep -qx "$role"; then
    cat <<CONF
GAVEL_KAFKA_BOOTSTRAP=127.0.0.1:$GAVEL_KAFKA_SASL_SSL_PORT
GAVEL_KAFKA_SECURITY_PROTOCOL=SASL_SSL
GAVEL_KAFKA_SASL_MECHANISM=SCRAM-SHA-512
GAVEL_KAFKA_SASL_USERNAME=gavel-$role
GAVEL_KAFKA_SASL_PASSWORD=$password
GAVEL_KAFKA_SSL_CA_LOCATION=$TLS_CA
CONF
  fi
  if access_owns_schema "$role"; then
    echo "GAVEL_POSTGRES_URL=postgres://gavel:gavel@127.0.0.1:$GAVEL_PG_PORT/gavel?sslmode=require"
    echo "GAVEL_POSTGRES_SSL_ROOT_CERT=$TLS_CA"
  elif access_roles postgres | grep -qx "$role"; then
    echo "GAVEL_POSTGRES_URL=postgres://$(access_pg_role "$role"):$password@127.0.0.1:$GAVEL_PG_PORT/gavel?sslmode=require"
    echo "GAVEL_POSTGRES_SSL_ROOT_CERT=$TLS_CA"
  fi
  right=$(access_registry_right "$role")
  if [[ -n $right ]]; then
    local user=reader
    [[ $right == write ]] && user=registrar
    cat <<CONF
GAVEL_REGISTRY_URL=https://127.0.0.1:$GAVEL_REGISTRY_PROXY_PORT/apis/ccompat/v7
GAVEL_REGISTRY_USERNAME=$user
GAVEL_REGISTRY_PASSWORD=$(access_password "registry-$user")
GAVEL_REGISTRY_CA_LOCATION=$TLS_CA
CONF
  fi
}

# Every role's credentials file, rewritten (ports may have moved), and the Postgres roles.
access_up() {
  mkdir -p "$CRED_DIR"
  chmod 700 "$CRED_DIR"
  local role
  for role in $(awk '{ sub(/#.*/, "") } NF == 4 && !seen[$1]++ { print $1 }' "$ACCESS_TABLE"); do
    (umask 077 && access_role_env "$role" >"$CRED_DIR/$role.env")
  done
  access_postgres_roles
  log "credentials of every role in $CRED_DIR (Kafka users and ACLs: gavel access apply --credentials $CRED_DIR)"
}
