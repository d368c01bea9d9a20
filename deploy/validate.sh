#!/usr/bin/env bash
# Validates every deployment file offline, with no cluster and no container engine:
#   - yamllint over the manifests, the compose file and the observability config;
#   - kustomize renders deploy/k8s/overlays/{local,production} and deploy/k8s/strimzi;
#   - every rendered resource against the strict Kubernetes schemas of 1.30 and 1.37
#     (shipped by the kubernetes-validate package), custom resources against
#     deploy/validate/crds.py, then the rules in deploy/validate/*.py (restricted Pod
#     Security Standard, probes, resources, replicas within the partition count,
#     references between resources, every role in deploy/roles.txt deployed);
#   - docker-compose.yml loaded by compose-go, the library `docker compose` uses.
# Tools are installed on first use from PyPI and the Go module proxy, cached under
# ${GAVEL_CACHE:-~/.cache/gavel}/deploy-tools. Exits non-zero on any problem.
#
#   deploy/validate.sh [--only k8s|compose] [--with-selftest]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS=${GAVEL_CACHE:-$HOME/.cache/gavel}/deploy-tools
KUSTOMIZE_VERSION=v5.8.2  # the newest that builds with Go 1.26 (5.8.3 wants Go 1.27)

only=all selftest=0
while (($#)); do
  case $1 in
    --only) only=$2; shift 2 ;;
    --with-selftest) selftest=1; shift ;;
    *) echo "usage: $0 [--only k8s|compose] [--with-selftest]" >&2; exit 2 ;;
  esac
done

log() { printf '[deploy] %s\n' "$*" >&2; }
die() { printf '[deploy] FAILED: %s\n' "$*" >&2; exit 1; }
fingerprint() { cat "$@" | sha256sum | cut -c1-12; }

# Python tools in a venv named after the requirements, so a version bump installs anew.
python_tools() {
  local req=$ROOT/deploy/validate/requirements.txt
  VENV=$TOOLS/venv-$(fingerprint "$req")
  [[ -f $VENV/.complete ]] && return
  log "installing $(grep -v '^#' "$req" | xargs) from PyPI into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$req"
  touch "$VENV/.complete"
}

go_env() {
  command -v go >/dev/null || die "go not found (needed to install kustomize and compose-check)"
  export GOPATH=$TOOLS/go GOMODCACHE=$TOOLS/go/mod GOCACHE=$TOOLS/go/build
  export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
}

# Built into a temporary name and renamed, so an interrupted build is never taken for
# a finished one.
kustomize_tool() {
  KUSTOMIZE=$TOOLS/bin/kustomize-$KUSTOMIZE_VERSION
  [[ -x $KUSTOMIZE ]] && return
  go_env
  log "building kustomize $KUSTOMIZE_VERSION from the Go module proxy (once; about 2 minutes)"
  GOBIN=$TOOLS/bin/tmp-$$ go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" \
    2>"$TOOLS/go.log" || die "go install kustomize: $(tail -n 20 "$TOOLS/go.log")"
  mv "$TOOLS/bin/tmp-$$/kustomize" "$KUSTOMIZE" && rmdir "$TOOLS/bin/tmp-$$"
}

compose_tool() {
  local src=$ROOT/deploy/validate/compose-check
  COMPOSE_CHECK=$TOOLS/bin/compose-check-$(fingerprint "$src/go.mod" "$src/go.sum" "$src/main.go")
  [[ -x $COMPOSE_CHECK ]] && return
  go_env
  log "building compose-check (compose-go) from the Go module proxy (once; about a minute)"
  mkdir -p "$TOOLS/bin"
  (cd "$src" && go build -mod=readonly -o "$COMPOSE_CHECK.tmp-$$" .) \
    2>"$TOOLS/go.log" || die "go build compose-check: $(tail -n 20 "$TOOLS/go.log")"
  mv "$COMPOSE_CHECK.tmp-$$" "$COMPOSE_CHECK"
}

t0=$SECONDS
mkdir -p "$TOOLS"
python_tools
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
cd "$ROOT"

lint_paths=(deploy/validate deploy/roles.txt)
check_args=(--root "$ROOT")
if [[ $only != compose ]]; then
  kustomize_tool
  lint_paths+=(deploy/k8s)
  for target in overlays/local overlays/production strimzi; do
    name=${target#overlays/}
    "$KUSTOMIZE" build "deploy/k8s/$target" >"$OUT/$name.yaml" 2>"$OUT/$name.err" \
      || die "kustomize build deploy/k8s/$target: $(cat "$OUT/$name.err")"
  done
  check_args+=(--render local="$OUT/local.yaml" --render production="$OUT/production.yaml"
    --examples strimzi="$OUT/strimzi.yaml"
    --examples secrets=deploy/k8s/overlays/production/secrets.example.yaml
    --example-secrets deploy/k8s/overlays/production/secrets.example.yaml)
fi
if [[ $only != k8s ]]; then
  compose_tool
  lint_paths+=(docker-compose.yml deploy/observability/prometheus/prometheus.yml
    deploy/observability/grafana/provisioning)
  "$COMPOSE_CHECK" docker-compose.yml >"$OUT/compose.json" || die "docker-compose.yml is invalid (above)"
  check_args+=(--compose "$OUT/compose.json")
fi

# roles.txt is plain text, not YAML: yamllint is given YAML files only.
yaml_files=()
while IFS= read -r -d '' f; do yaml_files+=("$f"); done < <(
  find "${lint_paths[@]}" -type f \( -name '*.yaml' -o -name '*.yml' \) -print0 2>/dev/null)
"$VENV/bin/yamllint" --strict -c deploy/validate/yamllint.yml "${yaml_files[@]}" || die "yamllint (above)"

counts=$(PYTHONDONTWRITEBYTECODE=1 "$VENV/bin/python" deploy/validate/check.py "${check_args[@]}") || die "deployment checks (above)"
declare -A n
for kv in $counts; do n[${kv%%=*}]=${kv#*=}; done

summary="deploy validation:"
if [[ $only != compose ]]; then
  summary+=" ${n[resources]} resources valid (Kubernetes ${n[k8s_versions]}) in ${n[overlays]} overlays"
  summary+=" + Strimzi/Secret examples, ${n[worker_roles]} worker roles deployed,"
fi
[[ $only != k8s ]] && summary+=" compose valid (${n[compose_services]} services),"
summary+=" ${#yaml_files[@]} YAML files linted"
if ((selftest)); then
  verdict=$(bash "$ROOT/deploy/validate-selftest.sh" | tail -n 1) || die "broken-manifest check: $verdict"
  summary+=", $verdict"
fi
echo "$summary ($((SECONDS - t0))s)"
