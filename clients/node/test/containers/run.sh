#!/usr/bin/env bash
# run.sh WORKDIR - the smtpfault package's Testcontainers test (CTest container.testcontainers):
#   1. podman and the base image as tests/container/run.sh has them (tests/container/podman.sh);
#   2. the image built from the Dockerfile (tag localhost/smtpfault:testcontainers);
#   3. podman's Docker-compatible API (`podman system service`) on a socket of this run, Ryuk off;
#   4. testcontainers and Nodemailer installed in WORKDIR from this directory's package-lock.json (kept for
#      later runs), and the package itself from its `npm pack` archive;
#   5. node --test testcontainers.test.js there, against the API.
# Exit 0 passed, 1 failed, 77 skipped: not root (and no password-less sudo), inside a container, or a Node
# older than testcontainers needs (20.18). Every step is bounded; the API service and the containers of the
# run are removed on any exit.
set -euo pipefail

if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 18) ? 0 : 1)'; then
    echo "run.sh: skipped: the testcontainers package needs Node 20.18 or newer, this is $(node --version)"
    exit 77
fi
if [ "$(id -u)" -ne 0 ]; then
    if sudo -n true 2>/dev/null; then
        exec sudo -n --preserve-env=CONTAINERS_CONF,PATH bash "$0" "$@"
    fi
    echo "run.sh: skipped: needs root (apt-get, debootstrap and rootful podman), or password-less sudo"
    exit 77
fi

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../../.." && pwd)
TC_DIR=${1:?usage: run.sh WORKDIR}
IMAGE=localhost/smtpfault:testcontainers
START=$SECONDS
DEADLINE=$((SECONDS + ${SMTPFAULT_CONTAINER_DEADLINE:-1200}))
WORK=$(mktemp -d /tmp/smtpfault-tc.XXXXXX)
SERVICE_PID=
# shellcheck source=tests/container/podman.sh
. "$ROOT/tests/container/podman.sh"
if in_container; then
    echo "run.sh: skipped: inside a container, where rootful podman cannot run nested"
    exit 77
fi

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    podman ps -a -q --filter "ancestor=$IMAGE" | xargs -r podman rm -f -v >/dev/null 2>&1 || true
    if [ -n "$SERVICE_PID" ]; then
        kill "$SERVICE_PID" 2>/dev/null || true
        wait "$SERVICE_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
    log "testcontainers test: $([ "$rc" -eq 0 ] && echo passed || echo "failed (exit $rc)")"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

take_lock podman
install_podman
write_containers_conf
export BUILDAH_FORMAT=docker
ensure_base_image
build "$IMAGE" "$WORK/build.log" --format docker -t "$IMAGE" "$ROOT"

log "podman system service on $WORK/podman.sock"
podman system service --time=0 "unix://$WORK/podman.sock" >"$WORK/service.log" 2>&1 &
SERVICE_PID=$!
until [ -S "$WORK/podman.sock" ]; do
    kill -0 "$SERVICE_PID" 2>/dev/null || { cat "$WORK/service.log"; fail "podman system service exited"; }
    [ $((SECONDS - START)) -lt $((DEADLINE - START)) ] || fail "no API socket"
    sleep 0.2
done

mkdir -p "$TC_DIR"
cp -p "$HERE/package.json" "$HERE/package-lock.json" "$HERE/testcontainers.test.js" "$TC_DIR/" # -p: the lock's age says when to reinstall
if [ ! -d "$TC_DIR/node_modules/testcontainers" ] || [ "$TC_DIR/package-lock.json" -nt "$TC_DIR/node_modules" ]; then
    log "npm ci: testcontainers and Nodemailer (package-lock.json)"
    # --ignore-scripts: ssh2's optional native speed-ups are not needed (nor a compiler for them)
    (cd "$TC_DIR" && bounded 600 npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) || fail "npm ci"
    touch "$TC_DIR/node_modules"
fi
tarball=$(cd "$ROOT/clients/node" && npm pack --silent --pack-destination "$WORK")
(cd "$TC_DIR" && bounded 120 npm install --no-save --ignore-scripts --prefer-offline --no-audit --no-fund \
    --loglevel=error "$WORK/$tarball") || fail "npm install $tarball"
log "installed $tarball; running testcontainers.test.js against the podman API"
# TESTCONTAINERS_HOST_OVERRIDE: in a Docker-made sandbox (/.dockerenv), testcontainers would reach the ports
# through the podman bridge's gateway, an address the test certificate does not name (it names localhost,
# 127.0.0.1 and ::1); the ports are published on the host's 127.0.0.1 as well.
(cd "$TC_DIR" && DOCKER_HOST="unix://$WORK/podman.sock" TESTCONTAINERS_RYUK_DISABLED=true \
    TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1 SMTPFAULT_IMAGE="$IMAGE" \
    bounded 600 node --test testcontainers.test.js) || fail "testcontainers.test.js"
