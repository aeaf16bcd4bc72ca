#!/usr/bin/env bash
# Builds and smoke-tests the mover image with podman.
#
#   scripts/image.sh build   # static binaries (crt-static, gnu target) + `podman build` FROM scratch
#   scripts/image.sh smoke   # one backup and one restore, run the way VolSync's Job runs them
#   scripts/image.sh check   # exit 0 if podman can run containers here, else print why, exit 77
#
# Knobs: ARKIV_IMAGE (default localhost/arkiv-mover:dev), CARGO_TARGET_DIR.
# No registry is needed: the image is FROM scratch and the binaries are built on the host.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE="${ARKIV_IMAGE:-localhost/arkiv-mover:dev}"
TRIPLE=x86_64-unknown-linux-gnu
# A target directory of its own: tests run this script while cargo may hold the main one.
TARGET_DIR="${ARKIV_IMAGE_TARGET_DIR:-${CARGO_TARGET_DIR:-$PWD/target}/image-build}"
BIN_DIR="$TARGET_DIR/$TRIPLE/release"
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
# What worked on CI-like machines: runc (crun fails here) and explicit ulimits.
RUN_OPTS=(--rm --runtime runc --ulimit nofile=4096:4096 --ulimit nproc=4096:4096)

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
    --bin arkiv-mover --bin arkiv-restore >&2
  local b
  for b in arkiv-mover arkiv-restore; do
    if readelf -l "$BIN_DIR/$b" | grep -q INTERP || readelf -d "$BIN_DIR/$b" | grep -q NEEDED; then
      log "$b is not statically linked"; readelf -d "$BIN_DIR/$b" >&2; exit 1
    fi
  done
  [[ -f "$CA_BUNDLE" ]] || { log "missing $CA_BUNDLE (apt-get install ca-certificates)"; exit 1; }
  local ctx
  ctx="$(mktemp -d)"
  trap 'rm -rf "$ctx"' RETURN
  cp Dockerfile "$ctx/"
  cp "$BIN_DIR/arkiv-mover" "$BIN_DIR/arkiv-restore" "$ctx/"
  strip "$ctx/arkiv-mover" "$ctx/arkiv-restore" 2>/dev/null || true
  cp "$CA_BUNDLE" "$ctx/ca-certificates.crt"
  local version
  version="$(git describe --always --dirty 2>/dev/null || echo dev)"
  log "podman build -t $IMAGE"
  podman build --runtime runc --pull=never --build-arg "VERSION=$version" \
    --build-arg "BUILDDATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)" -t "$IMAGE" "$ctx" >&2
  local size
  size="$(podman image inspect --format '{{.Size}}' "$IMAGE")"
  log "image $IMAGE: $size bytes ($(ls -l "$ctx/arkiv-mover" | awk '{print $5}') bytes mover, $(ls -l "$ctx/arkiv-restore" | awk '{print $5}') bytes restore)"
  echo "IMAGE_SIZE_BYTES=$size"
}

# Runs the image like VolSync's Job: env from the Secret (--env-file), data at /data (or
# /restore/data), cache at /cache, repository PVC at /mnt/repo, read-only root, uid 65532,
# no capabilities, no network, /tmp as tmpfs.
job() {
  local op="$1" data_mount="$2" data_dir="$3" cache="$4"
  podman run "${RUN_OPTS[@]}" --network none --read-only --user 65532:65532 \
    --cap-drop ALL --security-opt no-new-privileges --tmpfs /tmp:rw,size=64m \
    --env-file "$WORK/secret.env" -e DATA_DIR="$data_dir" -e KOPIA_CACHE_DIR=/cache \
    -e KOPIA_OVERRIDE_USERNAME=app -e KOPIA_OVERRIDE_HOSTNAME=media \
    -e KOPIA_DISCOVER_SNAPSHOTS=true \
    -v "$data_mount" -v "$cache:/cache" -v "$WORK/repo:/mnt/repo" \
    "$IMAGE" "$op"
}

smoke() {
  WORK="$(mktemp -d)"
  trap 'rm -rf "$WORK"' EXIT
  mkdir -p "$WORK"/{data/sub,restore/data,cache-src,cache-dst,repo}
  printf 'hello from the image\n' >"$WORK/data/hello.txt"
  head -c 300000 /dev/urandom >"$WORK/data/sub/random.bin"
  ln -s hello.txt "$WORK/data/link"
  chmod -R a+rX "$WORK/data"
  chown 65532:65532 "$WORK"/{restore/data,cache-src,cache-dst,repo}
  printf 'KOPIA_PASSWORD=image-smoke-password\nKOPIA_REPOSITORY=filesystem:///mnt/repo\n' >"$WORK/secret.env"

  log "backup"
  job backup "$WORK/data:/data:ro" /data "$WORK/cache-src" | tee "$WORK/backup.log"
  grep -q 'INFO: Snapshot created successfully' "$WORK/backup.log"
  log "restore"
  job restore "$WORK/restore:/restore" /restore/data "$WORK/cache-dst" | tee "$WORK/restore.log"
  grep -q 'INFO: Snapshot restore completed successfully' "$WORK/restore.log"
  diff -r --no-dereference "$WORK/data" "$WORK/restore/data"
  log "smoke OK: backup and restore through $IMAGE"
}

case "${1:-}" in
  build) build ;;
  smoke) smoke ;;
  check) check ;;
  *) echo "usage: $0 build|smoke|check" >&2; exit 2 ;;
esac
