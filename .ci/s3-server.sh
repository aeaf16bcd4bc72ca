#!/usr/bin/env bash
# Starts or stops the real S3 server (moto, from PyPI) that the S3 conformance and fault tests
# run against. Loopback only.
#
#   eval "$(.ci/s3-server.sh start)"   # installs moto (once), starts it, prints `export ...` lines
#   .ci/s3-server.sh stop              # stops it (idempotent)
#
# stdout carries only the `export` lines (so `eval` is safe); progress goes to stderr.
# Knobs: ARKIV_CI_DIR (default /tmp/arkiv-ci) holds the venv, pid file and log;
#        ARKIV_S3_PORT (default: a free port chosen at start); PYTHON (default python3).
set -euo pipefail

MOTO_VERSION="5.2.5"
CI_DIR="${ARKIV_CI_DIR:-/tmp/arkiv-ci}"
VENV="$CI_DIR/moto-venv"
PID_FILE="$CI_DIR/moto.pid"
LOG_FILE="$CI_DIR/moto.log"
PY="${PYTHON:-python3}"

log() { echo "s3-server: $*" >&2; }

install_moto() {
    if [[ -x "$VENV/bin/moto_server" ]] &&
        [[ "$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("moto"))' 2>/dev/null)" == "$MOTO_VERSION" ]]; then
        return 0
    fi
    log "installing moto[server]==$MOTO_VERSION into $VENV"
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" >&2
}

is_running() {
    [[ -f "$PID_FILE" ]] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null
}

start() {
    mkdir -p "$CI_DIR"
    if is_running; then
        log "already running (pid $(cat "$PID_FILE")); stopping it first"
        stop
    fi
    install_moto
    local port="${ARKIV_S3_PORT:-}"
    if [[ -z "$port" ]]; then
        port="$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    fi
    log "starting moto_server on 127.0.0.1:$port (log: $LOG_FILE)"
    # setsid: own process group, so `stop` ends moto and its children and nothing else.
    setsid "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$LOG_FILE" 2>&1 < /dev/null &
    echo $! >"$PID_FILE"
    # Poll until it answers an S3 request (ListBuckets), at most 60 s.
    local i
    for i in $(seq 1 120); do
        if "$VENV/bin/python" - "$port" <<'PY' 2>/dev/null; then
import sys, urllib.request
urllib.request.urlopen("http://127.0.0.1:%s/" % sys.argv[1], timeout=1).read()
PY
            log "moto answers after ~$((i / 2)) s (pid $(cat "$PID_FILE"))"
            echo "export ARKIV_S3_ENDPOINT=http://127.0.0.1:$port"
            echo "export AWS_ACCESS_KEY_ID=arkiv-test"
            echo "export AWS_SECRET_ACCESS_KEY=arkiv-test-secret"
            echo "export AWS_REGION=us-east-1"
            return 0
        fi
        if ! is_running; then
            log "moto_server exited; log follows"
            cat "$LOG_FILE" >&2
            exit 1
        fi
        sleep 0.5
    done
    log "moto_server did not answer within 60 s; log follows"
    cat "$LOG_FILE" >&2
    stop
    exit 1
}

stop() {
    if [[ -f "$PID_FILE" ]]; then
        local pid
        pid="$(cat "$PID_FILE")"
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 1 20); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.25
            done
            kill -KILL -- "-$pid" 2>/dev/null || true
            log "stopped moto_server (pid $pid)"
        fi
        rm -f "$PID_FILE"
    fi
}

case "${1:-}" in
start) start ;;
stop) stop ;;
*)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
