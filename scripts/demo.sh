#!/usr/bin/env bash
# The main job on an embedded default: builds arkiv, creates a local filesystem repository
# in a temp directory, backs up a generated tree, restores it and checks the restore is
# identical (contents, modes, mtimes, symlinks); then lists, verifies and restores the
# kopia-written fixture repository (shared/kopia/fixtures/repo-a) the same way.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --bins
ARKIV="$PWD/target/release/arkiv"
SHARED="${ARKIV_SHARED_DIR:-$PWD/../shared}"
FIXTURES="$SHARED/kopia/fixtures"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export TZ=UTC

echo "== 1. backup and restore round trip on a local filesystem repository ($WORK/repo)"
python3 "$FIXTURES/make_tree.py" "$WORK/data" --variant 1
export ARKIV_REPOSITORY="filesystem://$WORK/repo" ARKIV_PASSWORD=demo-password
"$ARKIV" repository create
"$ARKIV" snapshot create "$WORK/data" --compression zstd-fastest
python3 "$FIXTURES/make_tree.py" "$WORK/data" --variant 2
"$ARKIV" snapshot create "$WORK/data" --compression zstd-fastest
"$ARKIV" snapshot list
"$ARKIV" restore latest "$WORK/restored"
diff <(python3 "$FIXTURES/make_tree.py" --manifest "$WORK/data") \
     <(python3 "$FIXTURES/make_tree.py" --manifest "$WORK/restored")
"$ARKIV" verify --verify-files-percent 100
echo "OK: the restored tree is identical to the source"

echo "== 2. the kopia-written fixture repository ($FIXTURES/repo-a)"
export ARKIV_REPOSITORY="filesystem://$FIXTURES/repo-a" ARKIV_PASSWORD=fixture-password
"$ARKIV" snapshot list --all
"$ARKIV" verify --verify-files-percent 100
"$ARKIV" restore latest "$WORK/kopia-restored"
diff "$FIXTURES/expected/tree-v2.manifest.txt" \
     <(python3 "$FIXTURES/make_tree.py" --manifest "$WORK/kopia-restored")
echo "OK: kopia's latest snapshot restored identical to the tree kopia backed up"
