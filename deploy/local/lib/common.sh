# shellcheck shell=bash
# shellcheck disable=SC2034 # variables here are used by the files that source this one
# Shared settings and helpers for deploy/local/stack.sh (sourced, not executed).

# Where the stack keeps its data, logs and pid files. PostgreSQL runs as the unprivileged
# user "gavel", which must be able to traverse every parent of the data dir. The preferred
# default lives under $HOME; when $HOME is closed to other users (e.g. root's 0700 home) we
# fall back to /var/tmp instead of loosening the permissions of $HOME.
default_stack_dir() {
  local mode
  mode=$(stat -c %a "$HOME" 2>/dev/null || echo 0)
  if [[ $(id -u) -ne 0 ]] || (( 8#$mode & 1 )); then
    echo "$HOME/.local/share/gavel/stack"
  else
    echo "/var/tmp/gavel-stack-$(id -u)"
  fi
}

GAVEL_STACK_DIR=${GAVEL_STACK_DIR:-$(default_stack_dir)}
GAVEL_CACHE=${GAVEL_CACHE:-$HOME/.cache/gavel}
GAVEL_PG_PORT=${GAVEL_PG_PORT:-5432}
GAVEL_KAFKA_PORT=${GAVEL_KAFKA_PORT:-9092}
GAVEL_KAFKA_CONTROLLER_PORT=${GAVEL_KAFKA_CONTROLLER_PORT:-9093}
GAVEL_REGISTRY_PORT=${GAVEL_REGISTRY_PORT:-8081}
GAVEL_REGISTRY_MGMT_PORT=${GAVEL_REGISTRY_MGMT_PORT:-9000}
GAVEL_REGISTRY_PROXY_PORT=${GAVEL_REGISTRY_PROXY_PORT:-8082}
LOG_DIR=$GAVEL_STACK_DIR/logs
RUN_DIR=$GAVEL_STACK_DIR/run
STOP_TIMEOUT=${GAVEL_STOP_TIMEOUT:-30}

log() { printf '[stack] %s\n' "$*"; }
die() { printf '[stack] ERROR: %s\n' "$*" >&2; exit 1; }

# Pid recorded for a component, or empty.
pid_of() { cat "$RUN_DIR/$1.pid" 2>/dev/null || true; }

# True if the component's recorded pid is alive and its command line contains $2
# (guards against a recycled pid belonging to an unrelated process).
pid_alive() {
  local pid
  pid=$(pid_of "$1")
  [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$2"
}

# True if something accepts TCP connections on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Fail clearly if a port we are about to bind is held by a process we did not start.
require_free_port() {
  local port=$1 what=$2 holder
  port_open "$port" || return 0
  holder=$(ss -ltnpH "sport = :$port" 2>/dev/null | grep -o 'users:.*' | head -n1 || true)
  die "port $port (needed by $what) is already in use by a process not started by this script ${holder:+($holder)}; stop it or override the port (see deploy/local/README.md)"
}

# await_ready TIMEOUT_S COMPONENT MATCH CHECK_CMD...
# Polls CHECK_CMD every second. Returns 0 once it succeeds, 1 if the component's process
# died first, 2 on timeout.
await_ready() {
  local timeout=$1 comp=$2 match=$3
  shift 3
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    pid_alive "$comp" "$match" || return 1
    ((SECONDS < deadline)) || return 2
    sleep 1
  done
}

# Size of a file in bytes, 0 if it does not exist.
file_size() { stat -c %s "$1" 2>/dev/null || echo 0; }

# startup_tail LOGFILE COMPONENT [LOG_FROM OUT_FROM]
# The last lines a component wrote to its log and to its launch output (where a JVM that
# fails before logging prints why) since the given byte offsets, on one line.
startup_tail() {
  local logf=$1 out=$LOG_DIR/$2.out log_from=${3:-0} out_from=${4:-0}
  tail -c "+$((log_from + 1))" "$logf" 2>/dev/null | tail -n 5 | tr '\n' ' '
  if [[ -f $out && $out != "$logf" ]]; then
    printf '| %s: %s' "$out" "$(tail -c "+$((out_from + 1))" "$out" | tail -n 5 | tr '\n' ' ')"
  fi
  return 0
}

# wait_for DESCRIPTION TIMEOUT_S LOGFILE COMPONENT MATCH CHECK_CMD...
# Waits until CHECK_CMD succeeds; fails with the component's last words if it died.
wait_for() {
  local what=$1 timeout=$2 logf=$3 comp=$4 match=$5 rc=0
  shift 5
  await_ready "$timeout" "$comp" "$match" "$@" || rc=$?
  case $rc in
    0) return 0 ;;
    1) die "$what: process exited during startup; see $logf (last lines: $(startup_tail "$logf" "$comp"))" ;;
    *) die "$what: not ready after ${timeout}s; see $logf" ;;
  esac
}

# start_and_wait DESCRIPTION TIMEOUT_S LOGFILE COMPONENT MATCH LAUNCH_FN CHECK_CMD...
# Runs LAUNCH_FN, then waits as wait_for does. A process that dies during start-up is
# launched again, up to 3 times: on a busy or just-restored machine a JVM's first start
# can fail for a reason gone seconds later (CI once saw kafka.Kafka fail its static
# initialiser), and a retry costs seconds where a failed run costs the whole run. Not
# becoming ready in time is not retried: that is a real problem to look at.
start_and_wait() {
  local what=$1 timeout=$2 logf=$3 comp=$4 match=$5 launch_fn=$6 attempt rc log_from out_from
  shift 6
  for attempt in 1 2 3; do
    log_from=$(file_size "$logf")
    out_from=$(file_size "$LOG_DIR/$comp.out")
    "$launch_fn"
    rc=0
    await_ready "$timeout" "$comp" "$match" "$@" || rc=$?
    case $rc in
      0) return 0 ;;
      2) die "$what: not ready after ${timeout}s; see $logf" ;;
    esac
    log "$what: process exited during startup (attempt $attempt of 3; last lines: $(startup_tail "$logf" "$comp" "$log_from" "$out_from"))"
    sleep 2
  done
  die "$what: process exited during startup 3 times; see $logf"
}

# Launch "$@" detached (own session, no controlling tty), stdout/stderr to $2; record pid.
launch() {
  local name=$1 out=$2
  shift 2
  setsid nohup "$@" >>"$out" 2>&1 </dev/null 9>&- &
  echo $! >"$RUN_DIR/$name.pid"
}

# Send TERM to the pid, wait up to STOP_TIMEOUT seconds, then KILL; wait until it is gone.
stop_pid() {
  local name=$1 pid=$2 deadline
  kill -TERM "$pid" 2>/dev/null || return 0
  deadline=$((SECONDS + STOP_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      log "$name (pid $pid) ignored SIGTERM for ${STOP_TIMEOUT}s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      deadline=$((SECONDS + 10))
    fi
    sleep 0.2
  done
}

# Install the host packages the stack and the project build need, only if missing.
ensure_packages() {
  local pkgs=(cmake g++ make libcurl4-openssl-dev libssl-dev libsasl2-dev zlib1g-dev pkg-config
    postgresql-15 postgresql-client-15 maven openjdk-17-jre-headless curl nginx-light)
  local missing=() p
  for p in "${pkgs[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  [[ $(id -u) -eq 0 ]] || die "missing packages: ${missing[*]} (run: sudo apt-get install -y ${missing[*]})"
  log "installing missing packages: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Take an exclusive lock so concurrent up/down invocations do not interleave.
take_lock() {
  exec 9>"$RUN_DIR/stack.lock"
  flock -n 9 && return 0
  log "another stack.sh is running; waiting for it"
  flock -w 600 9 || die "timed out waiting for another stack.sh to finish"
}
