#!/usr/bin/env bash
# The main job on an embedded default: builds arkiv, then lists, verifies and restores the
# kopia-written fixture repository (shared/kopia/fixtures/repo-a) into a temp directory.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --bins
ARKIV="$PWD/target/release/arkiv"
SHARED="${ARKIV_SHARED_DIR:-$PWD/../shared}"
REPO="$SHARED/kopia/fixtures/repo-a"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export ARKIV_REPOSITORY="filesystem://$REPO" ARKIV_PASSWORD=fixture-password TZ=UTC

echo "== snapshot list ($REPO)"
"$ARKIV" snapshot list --all
echo "== verify"
"$ARKIV" verify --verify-files-percent 100
echo "== restore latest -> $WORK/restored"
"$ARKIV" restore latest "$WORK/restored"
echo "== compare with the source tree kopia snapshotted"
python3 "$SHARED/kopia/fixtures/make_tree.py" --manifest "$WORK/restored" > "$WORK/restored.manifest"
diff "$SHARED/kopia/fixtures/expected/tree-v2.manifest.txt" "$WORK/restored.manifest"
echo "OK: restored tree is identical to the source (files, modes, mtimes, symlinks)"
