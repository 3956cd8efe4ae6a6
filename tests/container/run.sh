#!/usr/bin/env bash
# run.sh - the Dockerfile and the compose files, tested for real under podman (docs/docker.md).
#
# From a fresh Debian 12 machine, as root:
#   1. installs podman, podman-compose, runc and debootstrap when missing (with netavark, aardvark-dns and
#      iptables, which give containers their networks and each other's service names);
#   2. makes the base image docker.io/library/debian:bookworm-slim with debootstrap when it is missing (no
#      registry needed; the image is kept for later runs);
#   3. builds the smtpfault image, prints its size and checks it (size limit, user, health check, ...);
#   4. brings up docker-compose.yml: the health check passes, the ports are published on 127.0.0.1 only,
#      the admin token is required, the CA in the volume is the one `smtpfault ctl ca` gives;
#   5. runs examples/compose/ (`up --abort-on-container-exit --exit-code-from app`): the example app's
#      test suite, whose result is this script's;
#   6. tears down every container, volume and network it made, on success, failure or interruption.
# Every step has a timeout, and the whole run a deadline. Exit status: 0 passed, 1 failed, 77 skipped
# (not root and no password-less sudo, or inside a container). Images and the build cache are kept: a second run is quick.
#
# Environment: SMTPFAULT_CONTAINER_DEADLINE (seconds for the whole run, default 1500),
# SMTPFAULT_IMAGE_MAX_MB (the image size limit, default 40), CONTAINERS_CONF (default: a config of our
# own, see write_containers_conf).
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    if sudo -n true 2>/dev/null; then
        exec sudo -n --preserve-env=SMTPFAULT_CONTAINER_DEADLINE,SMTPFAULT_IMAGE_MAX_MB,CONTAINERS_CONF \
            bash "$0" "$@"
    fi
    echo "run.sh: skipped: needs root (apt-get, debootstrap and rootful podman), or password-less sudo"
    exit 77
fi

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
EXAMPLE="$ROOT/examples/compose"
IMAGE=smtpfault                  # the name both compose files give the service's image
APP_IMAGE=smtpfault-example-app  # examples/compose/docker-compose.yml's app image
PREFIX=smtpfault-ctest           # every compose project this script starts is named $PREFIX-...
MAX_MB=${SMTPFAULT_IMAGE_MAX_MB:-40}
START=$SECONDS
DEADLINE=$((SECONDS + ${SMTPFAULT_CONTAINER_DEADLINE:-1500}))
WORK=$(mktemp -d /tmp/smtpfault-container.XXXXXX)
PROJECTS=()
# shellcheck source=tests/container/podman.sh
. "$ROOT/tests/container/podman.sh"
if in_container; then
    # CI's fresh-machine stage runs `make test` inside a container (.ci/fresh-machine); the image and the
    # compose files are tested by that stage's host, not by a podman nested in it.
    echo "run.sh: skipped: inside a container, where rootful podman cannot run nested"
    exit 77
fi

# show LOG [LINES] - a log, indented, without podman's complaints about what a sandbox lacks: without
# systemd (as here and in most CI containers) podman cannot schedule health checks, and says so at every
# container start and stop (`podman healthcheck run` still works, and is what this script uses); without
# /dev/log conmon cannot reach syslog.
show() {
    sed -e '/unable to get systemd connection/d' -e '/failed to connect to syslog/d' -e 's/^/    /' "$1" | tail -n "${2:-+1}"
}

# compose PROJECT FILE MAX LOG ARGS... - podman-compose on one project, bounded, its output in LOG. Never
# through a pipe: after `up --abort-on-container-exit`, podman-compose 1.0.3 leaves its `podman start -a`
# of the other services running, and they would hold the pipe open until the teardown.
compose() {
    local project=$1 file=$2 max=$3 logfile=$4
    shift 4
    bounded "$max" podman-compose -p "$project" -f "$file" "$@" >"$logfile" 2>&1
}

# teardown PROJECT FILE - everything the project made: containers, volumes, and its network, which
# podman-compose 1.0.3 leaves behind
teardown() {
    local project=$1 file=$2
    compose "$project" "$file" 120 "$WORK/down-$project.log" down -v || true
    podman ps -a -q --filter "label=io.podman.compose.project=$project" | xargs -r podman rm -f -v >/dev/null 2>&1 || true
    podman volume ls -q --filter "label=io.podman.compose.project=$project" | xargs -r podman volume rm -f >/dev/null 2>&1 || true
    podman network rm -f "${project}_default" >/dev/null 2>&1 || true
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    for entry in "${PROJECTS[@]}"; do
        teardown "${entry%% *}" "${entry#* }"
    done
    rm -rf "$WORK"
    if [ "$rc" -eq 0 ]; then
        log "container test: passed"
    else
        log "container test: failed (exit $rc)"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start_project PROJECT FILE - remember PROJECT for the teardown before anything of it exists
start_project() { PROJECTS+=("$1 $2"); }

# -- 3. images --------------------------------------------------------------------------------------------

check_image() {
    local bytes mb conf
    bytes=$(podman image inspect --format '{{.Size}}' "$IMAGE")
    mb=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1e6 }')
    log "image $IMAGE: $mb MB ($bytes bytes; limit $MAX_MB MB)"
    [ "$bytes" -lt $((MAX_MB * 1000000)) ] || fail "the image is $mb MB, over $MAX_MB MB"
    conf=$(podman image inspect --format '{{.Config.User}}|{{json .Config.Healthcheck.Test}}|{{json .Config.ExposedPorts}}|{{json .Config.Volumes}}|{{json .Config.Env}}' "$IMAGE")
    local want
    for want in '10001:10001|' '["CMD","/usr/bin/smtpfault","ctl","ping"]' '"2525/tcp"' '"2587/tcp"' \
        '"2465/tcp"' '{"/certs":{}}' 'SMTPFAULT_SMTP=0.0.0.0:2525' \
        'SMTPFAULT_SUBMISSION=0.0.0.0:2587' 'SMTPFAULT_SMTPS=0.0.0.0:2465' 'SMTPFAULT_ADMIN=127.0.0.1:2580' \
        'SMTPFAULT_CERTS_DIR=/certs'; do
        case "$conf" in
        *"$want"*) ;;
        *) fail "image config lacks $want: $conf" ;;
        esac
    done
    # The admin socket stays on the container's loopback unless the user opens it (the compose files do).
    for unwanted in '"2580/tcp"' 'SMTPFAULT_ADMIN_REMOTE' 'SMTPFAULT_ADMIN=0.0.0.0'; do
        case "$conf" in
        *"$unwanted"*) fail "image config has $unwanted: $conf" ;;
        esac
    done
    log "image config: user 10001, health check smtpfault ctl ping, ports 2525 2587 2465, admin on loopback, volume /certs"
}

# -- 4. docker-compose.yml --------------------------------------------------------------------------------

# free_port - a TCP port no socket uses (the host may run its own smtpfault on 2525), below the kernel's
# ephemeral range, where the outgoing connections of other programs would take it from us
free_port() {
    local p low=32768
    read -r low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
    while :; do
        p=$((10000 + RANDOM % (low - 10000)))
        command -v ss >/dev/null && ss -Htan "sport = :$p" | grep -q . && continue
        echo "$p"
        return
    done
}

# free_range N - the first of N consecutive free TCP ports, below the ephemeral range (see free_port)
free_range() {
    local n=$1 p low=32768 i ok
    read -r low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
    while :; do
        p=$((10000 + RANDOM % (low - 10000 - n)))
        ok=1
        for ((i = p; i < p + n; i++)); do
            command -v ss >/dev/null && ss -Htan "sport = :$i" | grep -q . && ok=0
        done
        [ "$ok" = 1 ] && { echo "$p"; return; }
    done
}

# admin_request PORT JSON - one line to the admin socket on 127.0.0.1:PORT, the answer on stdout
admin_request() {
    # shellcheck disable=SC2016 # $1 and $2 are the inner shell's
    bounded 10 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf "%s\n" "$2" >&3 && read -r line <&3 && echo "$line"' \
        _ "$1" "$2"
}

# wait_healthy CONTAINER - `podman healthcheck run` (the image's smtpfault ctl ping) until it passes
wait_healthy() {
    local ctr=$1 until=$((SECONDS + 60))
    while ! bounded 15 podman healthcheck run "$ctr" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$until" ] || { podman logs "$ctr" 2>&1 | tail -n 20; fail "$ctr never became healthy"; }
        sleep 1
    done
}

test_root_compose() {
    local project="$PREFIX-$$-root" file="$ROOT/docker-compose.yml" token ctr
    local smtp submission smtps admin scopes
    smtp=$(free_port) submission=$(free_port) smtps=$(free_port) admin=$(free_port) scopes=$(free_range 4)
    token=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
    start_project "$project" "$file"
    log "docker-compose.yml: up -d (host ports $smtp $submission $smtps $admin, scopes $scopes-$((scopes + 3)), with an admin token)"
    SMTPFAULT_SCOPE_PORTS=$scopes-$((scopes + 3)) SMTPFAULT_ADMIN_TOKEN=$token SMTPFAULT_SMTP_PORT=$smtp SMTPFAULT_SUBMISSION_PORT=$submission \
        SMTPFAULT_SMTPS_PORT=$smtps SMTPFAULT_ADMIN_PORT=$admin \
        compose "$project" "$file" 180 "$WORK/up-root.log" up -d || { show "$WORK/up-root.log" 30; fail "docker-compose.yml: up -d"; }
    ctr=$(podman ps -q --filter "label=io.podman.compose.project=$project" --filter "label=com.docker.compose.service=smtpfault")
    [ -n "$ctr" ] || { show "$WORK/up-root.log" 30; fail "docker-compose.yml: no smtpfault container running"; }

    wait_healthy "$ctr"
    log "health check (smtpfault ctl ping inside the container, with the token from the environment): healthy"

    local ports
    ports=$(podman port "$ctr")
    [ "$(grep -c . <<<"$ports")" -eq 8 ] || fail "published ports (4 and a range of 4 for scopes): $ports"
    ! grep -v -- '-> 127\.0\.0\.1:' <<<"$ports" || fail "a port is published beyond 127.0.0.1: $ports"
    log "ports published on 127.0.0.1 only: $(tr '\n' ' ' <<<"$ports")"

    local banner
    # shellcheck disable=SC2016 # $1 is the inner shell's
    banner=$(bounded 10 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && read -r line <&3 && printf "QUIT\r\n" >&3 && echo "$line"' _ "$smtp") ||
        fail "no banner on 127.0.0.1:$smtp"
    [[ "$banner" == "220 smtpfault "* ]] || fail "banner on 127.0.0.1:$smtp: $banner"
    log "SMTP from the host: $banner"

    local answer
    answer=$(admin_request "$admin" "{\"cmd\":\"ping\",\"token\":\"$token\"}") || fail "admin ping with the token"
    [[ "$answer" == *'"ok":true'* ]] || fail "admin ping with the token: $answer"
    answer=$(admin_request "$admin" '{"cmd":"ping"}') || fail "admin ping without the token"
    [[ "$answer" == *'"unauthorized"'* ]] || fail "admin ping without the token was not refused: $answer"
    log "admin socket from the host: answers with the token, refuses without"

    # HTTP on the same published port (docs/http.md): the web page needs no token, the API does.
    answer=$(bounded 10 curl -s "http://127.0.0.1:$admin/") || fail "GET / on the admin port"
    [[ "$answer" == *"<title>smtpfault</title>"* ]] || fail "GET / is not the web page: ${answer:0:200}"
    answer=$(bounded 10 curl -s -H "Authorization: Bearer $token" "http://127.0.0.1:$admin/api/v1/stats") ||
        fail "GET /api/v1/stats with the token"
    [[ "$answer" == *'"ok":true'* ]] || fail "GET /api/v1/stats with the token: $answer"
    answer=$(bounded 10 curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$admin/api/v1/stats") ||
        fail "GET /api/v1/stats without the token"
    [[ "$answer" == 401 ]] || fail "GET /api/v1/stats without the token answered $answer"
    log "HTTP from the host on the same port: the web page, the API with the token (401 without)"

    # A scope from the host: its port is in the published range, and it greets there.
    local scope_port
    answer=$(admin_request "$admin" "{\"cmd\":\"scope.create\",\"listeners\":[\"smtp\"],\"keep\":true,\"token\":\"$token\"}") ||
        fail "scope.create from the host"
    scope_port=$(sed -n 's/.*"port":\([0-9]*\).*/\1/p' <<<"$answer")
    [ -n "$scope_port" ] && [ "$scope_port" -ge "$scopes" ] && [ "$scope_port" -le $((scopes + 3)) ] ||
        fail "scope.create: a port outside $scopes-$((scopes + 3)): $answer"
    # shellcheck disable=SC2016 # $1 is the inner shell's
    banner=$(bounded 10 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && read -r line <&3 && printf "QUIT\r\n" >&3 && echo "$line"' _ "$scope_port") ||
        fail "no banner on the scope's 127.0.0.1:$scope_port"
    [[ "$banner" == "220 smtpfault "* ]] || fail "banner on the scope's 127.0.0.1:$scope_port: $banner"
    log "a scope created from the host listens on 127.0.0.1:$scope_port, in the published range: $banner"

    local ca mountpoint
    ca=$(bounded 15 podman exec "$ctr" /usr/bin/smtpfault ctl ca 2>/dev/null) || fail "smtpfault ctl ca"
    mountpoint=$(podman volume inspect --format '{{.Mountpoint}}' "${project}_smtpfault-certs")
    [ "$ca" = "$(cat "$mountpoint/ca.pem")" ] || fail "ctl ca differs from ca.pem in the certs volume"
    [ "$(stat -c %u "$mountpoint/ca.pem")" = 10001 ] || fail "ca.pem is not written by uid 10001"
    [ "$(podman top "$ctr" user | tail -n 1)" = smtpfault ] || fail "the server does not run as smtpfault"
    log "the certs volume's ca.pem is the CA of smtpfault ctl ca; the server runs as smtpfault (10001)"

    teardown "$project" "$file"
    log "docker-compose.yml: down"
}

# -- 5. examples/compose ----------------------------------------------------------------------------------

test_example() {
    local project="$PREFIX-$$-example" file="$EXAMPLE/docker-compose.yml" rc=0 app_rc ctr
    start_project "$project" "$file"
    log "examples/compose: up --abort-on-container-exit --exit-code-from app"
    # No admin token here: the example runs as a user runs it first (docker-compose.yml's test has one).
    (
        unset SMTPFAULT_ADMIN_TOKEN
        compose "$project" "$file" 300 "$WORK/up-example.log" up --abort-on-container-exit --exit-code-from app
    ) || rc=$?
    ctr=$(podman ps -a -q --filter "label=io.podman.compose.project=$project" --filter "label=com.docker.compose.service=app")
    app_rc=$(podman inspect --format '{{.State.ExitCode}}' "$ctr" 2>/dev/null || echo none)
    if [ -n "$ctr" ]; then
        log "the app's test suite (podman logs):"
        podman logs "$ctr" >"$WORK/app.log" 2>&1 || true
        show "$WORK/app.log"
    fi
    log "examples/compose: up exited $rc, the app's tests exited $app_rc"
    if [ "$rc" -ne 0 ] || [ "$app_rc" != 0 ]; then
        log "podman-compose up, with both services' output:"
        show "$WORK/up-example.log"
        fail "the example app's tests"
    fi
}

# -- main -------------------------------------------------------------------------------------------------

take_lock podman
install_podman
write_containers_conf
export BUILDAH_FORMAT=docker # podman build keeps HEALTHCHECK (the OCI format has none), compose builds too

# Leftovers of a run that was killed (SIGKILL leaves no time for the trap) go first.
podman ps -a -q --filter "name=^$PREFIX-" | xargs -r podman rm -f -v >/dev/null 2>&1 || true
podman volume ls -q --filter "name=^$PREFIX-" | xargs -r podman volume rm -f >/dev/null 2>&1 || true
podman network ls -q --filter "name=^$PREFIX-" | xargs -r podman network rm -f >/dev/null 2>&1 || true

ensure_base_image

build "$IMAGE" "$WORK/build-smtpfault.log" --format docker -t "$IMAGE" "$ROOT"
check_image
# The app's npm ci reaches the npm registry over TLS with the host's CA bundle (build time only).
mapfile -t ca_args < <(host_ca_args)
[ "${#ca_args[@]}" -gt 0 ] && ca_args+=(--build-arg NODE_EXTRA_CA_CERTS=/etc/ssl/host-ca.pem)
build "$APP_IMAGE" "$WORK/build-app.log" "${ca_args[@]}" -t "$APP_IMAGE" -f "$EXAMPLE/app/Dockerfile" "$ROOT"

test_root_compose
test_example
log "all checks passed in $((SECONDS - START)) s"
