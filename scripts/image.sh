#!/usr/bin/env bash
# Builds and smoke-tests the mover image with podman.
#
#   scripts/image.sh build   # static binaries (crt-static, gnu target) + `podman build` FROM scratch
#   scripts/image.sh smoke   # backups and restores run the way VolSync's Job runs them: as the
#                            # image's default uid 0 and as uid 1000, read-only root, hooks
#                            # (success, failure, enableActions: false), DEBUG_MOVER ended by `rm`
#   scripts/image.sh check   # exit 0 if podman can run containers here, else print why, exit 77
#
# Knobs: ARKIV_IMAGE (default localhost/arkiv-mover:dev), CARGO_TARGET_DIR.
# No registry is needed: the image is FROM scratch, the binaries are built on the host and the
# shell is Debian's busybox-static (apt-get install busybox-static).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE="${ARKIV_IMAGE:-localhost/arkiv-mover:dev}"
TRIPLE=x86_64-unknown-linux-gnu
# A target directory of its own: tests run this script while cargo may hold the main one.
TARGET_DIR="${ARKIV_IMAGE_TARGET_DIR:-${CARGO_TARGET_DIR:-$PWD/target}/image-build}"
BIN_DIR="$TARGET_DIR/$TRIPLE/release"
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
BUSYBOX=/bin/busybox
# What worked on CI-like machines: runc (crun fails here) and explicit ulimits.
BASE_OPTS=(--runtime runc --ulimit nofile=4096:4096 --ulimit nproc=4096:4096)
RUN_OPTS=(--rm "${BASE_OPTS[@]}")

log() { echo "image.sh: $*" >&2; }

check() {
  if ! command -v podman >/dev/null 2>&1; then
    echo "podman is not installed (apt-get install podman runc)"
    return 77
  fi
  local out
  if ! out=$(podman run "${RUN_OPTS[@]}" --network none --entrypoint /usr/local/bin/arkiv-restore \
      "$IMAGE" --version 2>&1); then
    echo "podman cannot run containers on this machine: $(echo "$out" | tail -n 3 | tr '\n' ' ')"
    return 77
  fi
}

build() {
  log "building static binaries for $TRIPLE"
  RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release --locked --target "$TRIPLE" -p arkiv-mover \
    --bin arkiv-mover --bin arkiv-restore --bin arkiv >&2
  local b
  for b in arkiv-mover arkiv-restore arkiv; do
    if readelf -l "$BIN_DIR/$b" | grep -q INTERP || readelf -d "$BIN_DIR/$b" | grep -q NEEDED; then
      log "$b is not statically linked"; readelf -d "$BIN_DIR/$b" >&2; exit 1
    fi
  done
  [[ -f "$CA_BUNDLE" ]] || { log "missing $CA_BUNDLE (apt-get install ca-certificates)"; exit 1; }
  local ctx
  ctx="$(mktemp -d)"
  trap 'rm -rf "$ctx"' RETURN
  cp Dockerfile "$ctx/"
  cp "$BIN_DIR/arkiv-mover" "$BIN_DIR/arkiv-restore" "$BIN_DIR/arkiv" "$ctx/"
  strip "$ctx/arkiv-mover" "$ctx/arkiv-restore" "$ctx/arkiv" 2>/dev/null || true
  cp "$CA_BUNDLE" "$ctx/ca-certificates.crt"
  # The shell for hooks and DEBUG_MOVER: busybox-static plus a link per applet (sh, rm, …).
  if [[ ! -x "$BUSYBOX" ]] || readelf -l "$BUSYBOX" | grep -q INTERP; then
    log "missing a static $BUSYBOX (apt-get install busybox-static)"; exit 1
  fi
  mkdir -p "$ctx/rootfs/bin"
  cp "$BUSYBOX" "$ctx/rootfs/bin/busybox"
  local applet
  for applet in $("$BUSYBOX" --list); do
    [[ "$applet" == busybox ]] || ln -s busybox "$ctx/rootfs/bin/$applet"
  done
  local version
  version="$(git describe --always --dirty 2>/dev/null || echo dev)"
  log "podman build -t $IMAGE"
  podman build --runtime runc --pull=never --build-arg "VERSION=$version" \
    --build-arg "BUILDDATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)" -t "$IMAGE" "$ctx" >&2
  local size
  size="$(podman image inspect --format '{{.Size}}' "$IMAGE")"
  log "image $IMAGE: $size bytes ($(ls -l "$ctx/arkiv-mover" | awk '{print $5}') bytes mover, $(ls -l "$ctx/arkiv" | awk '{print $5}') bytes CLI, $(ls -l "$ctx/arkiv-restore" | awk '{print $5}') bytes restore, $(ls -l "$ctx/rootfs/bin/busybox" | awk '{print $5}') bytes busybox)"
  echo "IMAGE_SIZE_BYTES=$size"
}

# Runs the image like VolSync's Job: env from the Secret (--env-file), data at /data (or
# /restore/data), cache at /cache, repository PVC at /mnt/repo, read-only root, no
# capabilities, no network, /tmp as tmpfs. USER_OPTS empty = the image's default user (uid 0).
# Extra `podman run` options (-e, -v, -d, --name) come before the operation in "$@".
job() {
  local op="$1" data_mount="$2" data_dir="$3" cache="$4" repo="$5"
  shift 5
  podman run "${RUN_OPTS[@]}" --network none --read-only "${USER_OPTS[@]}" \
    --cap-drop ALL --security-opt no-new-privileges --tmpfs /tmp:rw,size=64m \
    --env-file "$WORK/secret.env" -e DATA_DIR="$data_dir" -e KOPIA_CACHE_DIR=/cache \
    -e KOPIA_OVERRIDE_USERNAME=app -e KOPIA_OVERRIDE_HOSTNAME=media \
    -e KOPIA_DISCOVER_SNAPSHOTS=true \
    -v "$data_mount" -v "$cache:/cache" -v "$repo:/mnt/repo" "$@" \
    "$IMAGE" "$op"
}

expect() { # expect FILE PATTERN WHAT: fail the smoke test unless FILE has a line matching PATTERN
  grep -q -- "$2" "$1" || { log "FAILED: $3 (no line matching '$2' in $1)"; cat "$1" >&2; exit 1; }
}
refuse() { # refuse FILE PATTERN WHAT: fail if FILE has a line matching PATTERN
  if grep -q -- "$2" "$1"; then log "FAILED: $3 ('$2' found in $1)"; cat "$1" >&2; exit 1; fi
}

# One backup (with hooks) and one restore as USER_OPTS; the restored tree must equal the data.
roundtrip() {
  local name="$1" owner="$2"
  mkdir -p "$WORK/$name"/{restore/data,cache-src,cache-dst,repo}
  chown -R "$owner" "$WORK/$name"
  log "$name: backup with hooks"
  job backup "$WORK/data:/data:ro" /data "$WORK/$name/cache-src" "$WORK/$name/repo" \
    -e 'KOPIA_BEFORE_SNAPSHOT=echo "before-hook ran as uid $(id -u) in $(pwd)"' \
    -e 'KOPIA_AFTER_SNAPSHOT=echo after-hook ran; exit 7' >"$WORK/$name/backup.log" 2>&1 \
    || { cat "$WORK/$name/backup.log" >&2; log "FAILED: $name backup"; exit 1; }
  cat "$WORK/$name/backup.log"
  expect "$WORK/$name/backup.log" "before-hook ran as uid ${owner%%:*} in /" "$name: before hook"
  expect "$WORK/$name/backup.log" 'INFO: Snapshot created successfully' "$name: snapshot"
  expect "$WORK/$name/backup.log" 'after-hook ran' "$name: after hook"
  expect "$WORK/$name/backup.log" 'WARN: KOPIA_AFTER_SNAPSHOT failed' "$name: after-hook failure is a warning"
  log "$name: restore"
  job restore "$WORK/$name/restore:/restore" /restore/data "$WORK/$name/cache-dst" \
    "$WORK/$name/repo" >"$WORK/$name/restore.log" 2>&1 \
    || { cat "$WORK/$name/restore.log" >&2; log "FAILED: $name restore"; exit 1; }
  cat "$WORK/$name/restore.log"
  expect "$WORK/$name/restore.log" 'INFO: Snapshot restore completed successfully' "$name: restore"
  diff -r --no-dereference "$WORK/data" "$WORK/$name/restore/data"
}

smoke() {
  WORK="$(mktemp -d)"
  trap 'rm -rf "$WORK"' EXIT
  mkdir -p "$WORK"/data/sub
  printf 'hello from the image\n' >"$WORK/data/hello.txt"
  head -c 300000 /dev/urandom >"$WORK/data/sub/random.bin"
  ln -s hello.txt "$WORK/data/link"
  chmod -R a+rX "$WORK/data"
  printf 'KOPIA_PASSWORD=image-smoke-password\nKOPIA_REPOSITORY=filesystem:///mnt/repo\n' >"$WORK/secret.env"

  # The image's default user: uid 0 (no USER in the image), as with the image it replaces.
  USER_OPTS=()
  roundtrip root 0:0
  # Any uid the pod's securityContext names.
  USER_OPTS=(--user 1000:1000)
  roundtrip uid1000 1000:1000

  USER_OPTS=()
  local r="$WORK/root" out
  log "a failing KOPIA_BEFORE_SNAPSHOT fails the backup, no snapshot is written"
  out="$WORK/before-fails.log"
  if job backup "$WORK/data:/data:ro" /data "$r/cache-src" "$r/repo" \
      -e 'KOPIA_BEFORE_SNAPSHOT=echo before-hook says no; exit 3' >"$out" 2>&1; then
    cat "$out" >&2; log "FAILED: the backup succeeded although its before hook failed"; exit 1
  fi
  cat "$out"
  expect "$out" 'before-hook says no' 'before hook ran'
  expect "$out" 'KOPIA_BEFORE_SNAPSHOT failed' 'before-hook failure named'
  refuse "$out" 'Snapshot created successfully' 'no snapshot after a failed before hook'

  log "hooks are skipped when the repository config says enableActions: false"
  printf '{"enableActions": false}\n' >"$WORK/repository.config"
  chmod a+r "$WORK/repository.config"
  out="$WORK/actions-off.log"
  job backup "$WORK/data:/data:ro" /data "$r/cache-src" "$r/repo" \
    -v "$WORK/repository.config:/kopia-config/repository.config:ro" \
    -e KOPIA_CONFIG_PATH=/kopia-config -e KOPIA_REPOSITORY_CONFIG_FILE=/kopia-config/repository.config \
    -e 'KOPIA_BEFORE_SNAPSHOT=echo before-hook-should-not-run; exit 3' \
    -e 'KOPIA_AFTER_SNAPSHOT=echo after-hook-should-not-run' >"$out" 2>&1 \
    || { cat "$out" >&2; log "FAILED: backup with enableActions: false"; exit 1; }
  cat "$out"
  refuse "$out" 'hook-should-not-run' 'hooks skipped'
  expect "$out" 'enableActions: false' 'skipped hooks named'
  expect "$out" 'INFO: Snapshot created successfully' 'snapshot with hooks off'

  log "DEBUG_MOVER waits until /tmp/exit-debug-if-removed is removed"
  local name="arkiv-debug-$$"
  podman rm -f "$name" >/dev/null 2>&1 || true
  # Kept after it exits (no --rm) so its exit code and log can be read.
  RUN_OPTS=("${BASE_OPTS[@]}")
  job backup "$WORK/data:/data:ro" /data "$r/cache-src" "$r/repo" -d --name "$name" \
    -e DEBUG_MOVER=1 >/dev/null
  RUN_OPTS=(--rm "${BASE_OPTS[@]}")
  local i
  for i in $(seq 1 30); do
    podman logs "$name" 2>&1 | grep -q 'sleeping until' && break
    sleep 1
  done
  sleep 3
  if [[ "$(podman inspect --format '{{.State.Running}}' "$name")" != true ]]; then
    podman logs "$name" >&2 || true; podman rm -f "$name" >/dev/null 2>&1
    log "FAILED: debug mode did not wait for the marker"; exit 1
  fi
  podman exec "$name" rm /tmp/exit-debug-if-removed
  local rc
  rc="$(timeout 60 podman wait "$name")"
  podman logs "$name" >"$WORK/debug.log" 2>&1
  podman rm -f "$name" >/dev/null 2>&1
  cat "$WORK/debug.log"
  [[ "$rc" == 0 ]] || { log "FAILED: debug mode exit code $rc"; exit 1; }
  expect "$WORK/debug.log" 'debug mode ended' 'debug mode ended'
  refuse "$WORK/debug.log" 'Snapshot created' 'debug mode runs no backup'
  echo "debug mode ended by rm"
  log "smoke OK: backups and restores through $IMAGE as uid 0 and uid 1000, hooks, DEBUG_MOVER"
}

case "${1:-}" in
  build) build ;;
  smoke) smoke ;;
  check) check ;;
  *) echo "usage: $0 build|smoke|check" >&2; exit 2 ;;
esac
