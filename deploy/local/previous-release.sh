#!/usr/bin/env bash
# Builds the previous release's `gavel` (the commit named in
# deploy/local/previous-release) as target/previous/<commit>/gavel, beside that
# release's schemas/ folder, for the rolling-upgrade test; does nothing when
# they are already there.
# It builds in this tree's target directory: the Cargo.lock is the same, so
# the dependencies compiled for this tree are reused and only Gavel's own
# crates compile again.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
if ! command -v cargo >/dev/null 2>&1 && [[ -x $HOME/.cargo/bin/cargo ]]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
commit=$(grep -Ev '^(#|$)' deploy/local/previous-release | head -n 1)
short=${commit:0:12}
target=${CARGO_TARGET_DIR:-$ROOT/target}
out=$target/previous/$short
if [[ -x $out/gavel && -d $out/schemas ]]; then
  echo "[previous] $out/gavel is built"
  exit 0
fi
if ! git cat-file -e "$commit^{commit}" 2>/dev/null; then
  echo "[previous] ERROR: commit $commit is not in this clone; a shallow clone needs 'git fetch --unshallow'" >&2
  exit 1
fi
t0=$SECONDS
src=$target/previous/src-$short
rm -rf "$src" "$out"
mkdir -p "$src"
git archive "$commit" | tar -x -C "$src"
# The build links the previous release as target/release/gavel: removed
# however this script ends, so this tree's next build links its own binary
# there again (cargo relinks a missing one) and nothing runs or packages the
# old one by mistake.
trap 'rm -f "$target/release/gavel"' EXIT
cargo build --release --locked --manifest-path "$src/Cargo.toml" --target-dir "$target" --bin gavel
rm -rf "$out.part"
mkdir -p "$out.part"
cp "$target/release/gavel" "$out.part/gavel"
cp -r "$src/schemas" "$out.part/schemas"
mv "$out.part" "$out"
rm -rf "$src"
echo "[previous] $out/gavel built in $((SECONDS - t0))s"
