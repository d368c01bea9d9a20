#!/usr/bin/env bash
# Proves that deploy/validate.sh rejects broken deployment files. Each case copies the
# deployment files into a scratch tree, breaks one thing, runs the copy's validate.sh
# and expects it to fail with a message naming that thing. A case whose edit does not
# apply, or that validates, fails this script. One line per case on stderr; the
# verdict on stdout.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT

passed=0 failed=0

# The files validate.sh reads, and nothing else.
fresh_tree() {
  rm -rf "$SCRATCH/tree"
  mkdir -p "$SCRATCH/tree/src" "$SCRATCH/tree/deploy"
  cp "$ROOT/Dockerfile" "$ROOT/docker-compose.yml" "$SCRATCH/tree/"
  cp "$ROOT/src/main.rs" "$SCRATCH/tree/src/"
  cp -r "$ROOT/deploy/k8s" "$ROOT/deploy/validate" "$ROOT/deploy/compose" "$ROOT/deploy/observability" \
    "$ROOT/deploy/roles.txt" "$ROOT/deploy/access.txt" "$ROOT/deploy/validate.sh" "$SCRATCH/tree/deploy/"
}

# edit FILE OLD NEW: replace the first OLD (which must be there) with NEW.
edit() {
  python3 - "$SCRATCH/tree/$1" "$2" "$3" <<'EOF'
import sys
path, old, new = sys.argv[1:]
text = open(path).read()
if old not in text:
    sys.exit(f"selftest: {old!r} not found in {path}: the case no longer applies")
open(path, "w").write(text.replace(old, new, 1))
EOF
}

# expect_rejected NAME PART PATTERN FILE OLD NEW
expect_rejected() {
  local name=$1 part=$2 pattern=$3
  fresh_tree
  if ! edit "$4" "$5" "$6"; then
    failed=$((failed + 1)); return
  fi
  if bash "$SCRATCH/tree/deploy/validate.sh" --only "$part" >"$SCRATCH/out" 2>&1; then
    echo "NOT REJECTED: $name" >&2; failed=$((failed + 1))
  elif ! grep -Eq -- "$pattern" "$SCRATCH/out"; then
    echo "REJECTED FOR ANOTHER REASON: $name (expected /$pattern/):" >&2; tail -n 5 "$SCRATCH/out" >&2
    failed=$((failed + 1))
  else
    echo "[selftest] rejected $name: $(grep -Em1 -- "$pattern" "$SCRATCH/out")" >&2
    passed=$((passed + 1))
  fi
}

expect_rejected "a wrong field type" k8s "schema: spec.replicas: 'two' is not of type 'integer'" \
  deploy/k8s/base/workers/query-api.yaml "replicas: 2" "replicas: two"
expect_rejected "a misspelt field" k8s "'terminationGracePeriod' was unexpected" \
  deploy/k8s/base/patches/worker.yaml "terminationGracePeriodSeconds: 30" "terminationGracePeriod: 30"
expect_rejected "a missing container image" k8s "container gavel: no image" \
  deploy/k8s/base/patches/pod.yaml "          image: gavel
" ""
expect_rejected "an invalid securityContext" k8s "allowPrivilegeEscalation must be false" \
  deploy/k8s/base/patches/pod.yaml "allowPrivilegeEscalation: false" "allowPrivilegeEscalation: true"
expect_rejected "a role left undeployed" k8s "worker role \`gavel event-store\` is not deployed" \
  deploy/k8s/base/workers/event-store.yaml "args: [event-store]" "args: [event-stor]"
expect_rejected "autoscaling beyond the partitions" k8s "maxReplicaCount 12 > GAVEL_PARTITIONS 6" \
  deploy/k8s/components/autoscaling/scaled-objects.yaml "maxReplicaCount: 6" "maxReplicaCount: 12"
expect_rejected "a KEDA trigger on a group nobody uses" k8s "consumer group 'gavel-sink-view-event-store'" \
  deploy/k8s/components/autoscaling/scaled-objects.yaml "gavel-sink-views-event-store" "gavel-sink-view-event-store"
expect_rejected "a dangling Secret reference" k8s "Secret 'gavel-jwt' is neither in the render" \
  deploy/k8s/base/workers/command-api.yaml "name: gavel-command-api
                  key" "name: gavel-jwt
                  key"
expect_rejected "a new subcommand nobody deployed" k8s "gavel reindex\` \(src/main.rs\) is not in deploy/roles.txt" \
  src/main.rs "enum Command {" "enum Command {
    Reindex,"
expect_rejected "a workload holding another role's credentials" k8s "Deployment/gavel-query-api: reads other roles' credentials: gavel-role-sink" \
  deploy/k8s/base/kustomization.yaml "name: gavel-role-query-api}" "name: gavel-role-sink}"
expect_rejected "a compose service logging in as another role" compose "service query-api: GAVEL_CONFIG must be /credentials/query-api.env" \
  docker-compose.yml "GAVEL_CONFIG: /credentials/query-api.env" "GAVEL_CONFIG: /credentials/sink.env"
expect_rejected "an unknown compose condition" compose "condition value must be one of" \
  docker-compose.yml "condition: service_completed_successfully" "condition: service_done"
expect_rejected "a compose worker not hardened" compose "service sink: read_only must be true" \
  docker-compose.yml "    command: [sink]" "    command: [sink]
    read_only: false"
expect_rejected "a role missing from compose" compose "\`gavel lag-exporter\` is not deployed" \
  docker-compose.yml "command: [lag-exporter]" "command: [lag-exporters]"

if ((failed)); then
  echo "broken-manifest check: FAILED ($failed of $((passed + failed)) broken files were not rejected as expected)"
  exit 1
fi
echo "broken-manifest check: rejected ($passed of $passed deliberately broken files)"
