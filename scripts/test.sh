#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what the tests need (a real S3
# server: moto, pinned, in a venv), builds the binaries, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# The end-to-end tests run the built binaries.
cargo build --workspace --bins

# A real S3 server on loopback for the S3 backend tests (skipped loudly without one,
# a failure when CI=true).
if [ -f .ci/s3-server.sh ] && [ -z "${ARKIV_S3_ENDPOINT:-}" ]; then
  eval "$(bash .ci/s3-server.sh start)"
  STOP_SERVERS="bash .ci/s3-server.sh stop >/dev/null 2>&1 || true"
  trap "$STOP_SERVERS" EXIT
fi

# Real servers for the other backends (WebDAV via rclone, Azure via Azurite), loopback only.
if [ -f .ci/servers.sh ] && [ -z "${ARKIV_WEBDAV_URL:-}" ]; then
  eval "$(bash .ci/servers.sh start)"
  STOP_SERVERS="bash .ci/servers.sh stop >/dev/null 2>&1 || true${STOP_SERVERS:+; $STOP_SERVERS}"
  trap "$STOP_SERVERS" EXIT
fi

# The metrics tests' tools (issue 17): a real Pushgateway, promtool, a text-format parser.
if [ -f .ci/metrics-tools.sh ] && [ -z "${ARKIV_PROM_PYTHON:-}" ]; then
  eval "$(bash .ci/metrics-tools.sh)"
fi

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
