# shellcheck shell=bash
# PostgreSQL 15 (Debian build) for the local stack. Sourced by stack.sh.
# Postgres refuses to run as root, so when we are root it runs as the system user
# $GAVEL_PG_OS_USER (default "gavel"); otherwise it runs as the invoking user.

GAVEL_PG_OS_USER=${GAVEL_PG_OS_USER:-gavel}
PG_DATA=$GAVEL_STACK_DIR/postgres
PG_LOG=$LOG_DIR/postgres.log

pg_bin() {
  if [[ -x /usr/lib/postgresql/15/bin/pg_ctl ]]; then
    echo /usr/lib/postgresql/15/bin
  else
    pg_config --bindir
  fi
}

# Run a command as the postgres OS user (from / so the user's lack of access to our cwd is moot).
as_pg() {
  if [[ $(id -u) -eq 0 ]]; then
    (cd / && runuser -u "$GAVEL_PG_OS_USER" -- "$@" 9>&-)
  else
    "$@" 9>&-
  fi
}

# Running = the postmaster of *our* data dir is alive. Re-syncs the pid file from postmaster.pid.
pg_running() {
  local pid
  pid=$(head -n1 "$PG_DATA/postmaster.pid" 2>/dev/null || true)
  if [[ -n $pid && -d $RUN_DIR ]] && tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$PG_DATA"; then
    echo "$pid" >"$RUN_DIR/postgres.pid"
  fi
  pid_alive postgres "$PG_DATA"
}

pg_psql() {
  PGPASSWORD=gavel "$(pg_bin)/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$GAVEL_PG_PORT" -U gavel "$@"
}

# Loopback TCP with SCRAM passwords: each role logs in with its own (lib/access.sh),
# so a role's rights mean something. Stacks made before were `trust`; `up` switches them.
pg_hba() {
  printf '# Written by deploy/local/stack.sh on every start.\nhost all all 127.0.0.1/32 scram-sha-256\nhost all all ::1/128 scram-sha-256\n'
}

# Rewrites pg_hba.conf when it differs and has the server reload it.
pg_write_hba() {
  cmp -s "$PG_DATA/pg_hba.conf" <(pg_hba) && return 0
  pg_hba | as_pg tee "$PG_DATA/pg_hba.conf" >/dev/null
  pg_psql -d postgres -Atc 'SELECT pg_reload_conf()' >/dev/null
  log "postgres: password authentication (scram-sha-256) on loopback"
}

# Rewritten on every start so port overrides take effect. TLS is on (plain
# connections still work): sslmode=require clients verify it against lib/tls.sh's CA.
pg_write_conf() {
  tls_ensure
  tls_postgres_files
  as_pg tee "$PG_DATA/gavel.conf" >/dev/null <<EOF
listen_addresses = '127.0.0.1'
port = $GAVEL_PG_PORT
unix_socket_directories = ''
max_connections = 200
shared_buffers = 256MB
synchronous_commit = off
fsync = on
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
EOF
}

pg_up() {
  local bin
  bin=$(pg_bin)
  if pg_running; then
    log "postgres already running (pid $(pid_of postgres))"
    # TLS settings reload without a restart; a stack started before them gains them.
    if [[ $(pg_psql -d postgres -Atc 'SHOW ssl' 2>/dev/null) != on ]]; then
      pg_write_conf
      pg_psql -d postgres -Atc 'SELECT pg_reload_conf()' >/dev/null
      log "postgres TLS turned on (configuration reloaded)"
    fi
  else
    require_free_port "$GAVEL_PG_PORT" postgres
    if [[ $(id -u) -eq 0 ]] && ! id -u "$GAVEL_PG_OS_USER" >/dev/null 2>&1; then
      log "creating system user $GAVEL_PG_OS_USER"
      useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$GAVEL_PG_OS_USER"
    fi
    mkdir -p "$PG_DATA"
    touch "$PG_LOG"
    if [[ $(id -u) -eq 0 ]]; then
      chown "$GAVEL_PG_OS_USER:" "$PG_DATA" "$PG_LOG"
      as_pg test -x "$GAVEL_STACK_DIR" ||
        die "user $GAVEL_PG_OS_USER cannot traverse $GAVEL_STACK_DIR (a parent dir is not o+x); set GAVEL_STACK_DIR elsewhere"
    fi
    chmod 700 "$PG_DATA"
    if [[ ! -s $PG_DATA/PG_VERSION ]]; then
      log "initdb $PG_DATA"
      # The superuser's password from a file its OS user can read (initdb wants a path).
      local pwfile=$GAVEL_STACK_DIR/initdb.pw
      (umask 077 && echo gavel >"$pwfile")
      [[ $(id -u) -ne 0 ]] || chown "$GAVEL_PG_OS_USER:" "$pwfile"
      as_pg "$bin/initdb" -D "$PG_DATA" -U gavel --pwfile="$pwfile" --auth=scram-sha-256 \
        -E UTF8 --locale=C.UTF-8 >>"$PG_LOG" 2>&1 || { rm -f "$pwfile"; die "initdb failed; see $PG_LOG"; }
      rm -f "$pwfile"
      echo "include = 'gavel.conf'" | as_pg tee -a "$PG_DATA/postgresql.conf" >/dev/null
      pg_hba | as_pg tee "$PG_DATA/pg_hba.conf" >/dev/null
    fi
    pg_write_conf
    log "starting postgres on 127.0.0.1:$GAVEL_PG_PORT"
    as_pg "$bin/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 start >/dev/null ||
      die "postgres failed to start; see $PG_LOG"
    pg_running || die "postgres started but its postmaster pid was not found; see $PG_LOG"
  fi
  wait_for postgres 60 "$PG_LOG" postgres "$PG_DATA" \
    "$bin/pg_isready" -q -h 127.0.0.1 -p "$GAVEL_PG_PORT" -U gavel -d postgres
  pg_psql -d postgres >/dev/null <<'SQL'
DO $$BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'gavel') THEN CREATE ROLE gavel; END IF;
END$$;
ALTER ROLE gavel WITH LOGIN SUPERUSER PASSWORD 'gavel';
SELECT 'CREATE DATABASE gavel OWNER gavel' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'gavel')\gexec
SELECT 'CREATE DATABASE apicurio OWNER gavel' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'apicurio')\gexec
SQL
  pg_write_hba
  log "postgres ready: postgresql://gavel:gavel@127.0.0.1:$GAVEL_PG_PORT/gavel (pid $(pid_of postgres))"
}

pg_down() {
  local pid
  if ! pg_running; then
    rm -f "$RUN_DIR/postgres.pid"
    return 0
  fi
  pid=$(pid_of postgres)
  log "stopping postgres (pid $pid)"
  as_pg "$(pg_bin)/pg_ctl" -D "$PG_DATA" -m fast -w -t "$STOP_TIMEOUT" stop >/dev/null 2>&1 || true
  stop_pid postgres "$pid"
  rm -f "$RUN_DIR/postgres.pid"
}
