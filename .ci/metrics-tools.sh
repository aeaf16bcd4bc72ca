#!/usr/bin/env bash
# Installs what the metrics tests need (issue 17) and prints `export` lines for them:
#   * the Prometheus Pushgateway (Debian package `prometheus-pushgateway`): the mover pushes
#     to a real one, the test reads its /metrics back;
#   * promtool (Debian package `prometheus`): evaluates examples/prometheus-rules.yaml;
#   * prometheus_client (PyPI, pinned, in a venv): its text-format parser reads what arkiv
#     wrote.
#
#   eval "$(bash .ci/metrics-tools.sh)"
#
# stdout carries only `export` lines; progress goes to stderr. ARKIV_CI_DIR (default
# /tmp/arkiv-ci) holds the venv.
set -euo pipefail

PROMETHEUS_CLIENT_VERSION="0.21.1"
CI_DIR="${ARKIV_CI_DIR:-/tmp/arkiv-ci}"
VENV="$CI_DIR/prom-venv"
PY="${PYTHON:-python3}"

log() { echo "metrics-tools: $*" >&2; }

if ! command -v prometheus-pushgateway >/dev/null || ! command -v promtool >/dev/null; then
    log "installing prometheus-pushgateway and prometheus (promtool) (apt)"
    {
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
            --no-install-recommends prometheus-pushgateway prometheus
    } >&2
fi

if [[ "$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("prometheus_client"))' 2>/dev/null)" != "$PROMETHEUS_CLIENT_VERSION" ]]; then
    log "installing prometheus_client==$PROMETHEUS_CLIENT_VERSION into $VENV"
    mkdir -p "$CI_DIR"
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "prometheus_client==$PROMETHEUS_CLIENT_VERSION" >&2
fi

echo "export ARKIV_PUSHGATEWAY_BIN=$(command -v prometheus-pushgateway)"
echo "export ARKIV_PROMTOOL_BIN=$(command -v promtool)"
echo "export ARKIV_PROM_PYTHON=$VENV/bin/python"
