# podman.sh - what the container test (run.sh) and CI's fresh-machine stage (.ci/fresh-machine) share:
# bounded steps against a deadline, podman and its network backend installed from Debian, a podman
# configuration this sandbox accepts, and the base image debian:bookworm-slim made with debootstrap.
# Sourced, not run. The sourcing script sets START, DEADLINE and WORK (a private temporary directory).

BASE_IMAGE=docker.io/library/debian:bookworm-slim

log() { printf '[%4ds] %s\n' "$((SECONDS - START))" "$*"; }
fail() {
    log "FAILED: $*"
    exit 1
}

# bounded MAX CMD... - run CMD (an executable, not a function) for at most MAX seconds, and never past
# the deadline; 124 when it ran out of time
bounded() {
    local max=$1 left=$((DEADLINE - SECONDS))
    shift
    [ "$left" -lt "$max" ] && max=$left
    if [ "$max" -le 0 ]; then
        log "out of time before: $*"
        return 124
    fi
    timeout --kill-after=10 "$max" "$@"
}

# in_container - true inside a container that podman runs (it writes /run/.containerenv), as the
# fresh-machine stage's: a rootful podman cannot run nested there. Not /.dockerenv: this project's own
# machines are Docker-made sandboxes where podman runs fine.
in_container() { [ -f /run/.containerenv ]; }

# take_lock NAME - one run at a time per NAME (apt-get, and the image tags are shared)
take_lock() {
    exec 9>"/tmp/smtpfault-$1.lock"
    bounded 900 flock 9 || fail "another run holds /tmp/smtpfault-$1.lock"
}

# install_podman - podman, podman-compose, runc and debootstrap when missing, with netavark and
# aardvark-dns (containers reach each other by service name) and iptables (netavark's NAT for the
# containers' own networks: without it, "netavark: No such file or directory")
install_podman() {
    local p missing=()
    for p in podman podman-compose runc debootstrap netavark aardvark-dns iptables; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    log "installing ${missing[*]}"
    bounded 300 apt-get update -qq
    DEBIAN_FRONTEND=noninteractive bounded 600 apt-get install -y -qq --no-install-recommends "${missing[@]}" \
        >"$WORK/apt.log" 2>&1 || { tail -n 20 "$WORK/apt.log"; fail "apt-get install ${missing[*]}"; }
}

# write_containers_conf - sandboxes may forbid raising rlimits (podman's default_ulimits raise nofile)
# and have cgroup v1: no ulimits, runc, netavark (for aardvark-dns). Set through CONTAINERS_CONF for
# this script alone; nothing global is changed.
write_containers_conf() {
    if [ -n "${CONTAINERS_CONF:-}" ]; then
        log "using CONTAINERS_CONF=$CONTAINERS_CONF"
        return 0
    fi
    cat >"$WORK/containers.conf" <<'CONF'
[containers]
default_ulimits = []
[engine]
runtime = "runc"
[network]
network_backend = "netavark"
CONF
    export CONTAINERS_CONF="$WORK/containers.conf"
}

# ensure_base_image - debian:bookworm-slim from Debian's packages, under the name the Dockerfiles' FROM
# uses, so they work unchanged; made once and kept. The mirror and the apt sources are the machine's.
ensure_base_image() {
    if podman image exists "$BASE_IMAGE"; then
        log "base image $BASE_IMAGE: present"
        return 0
    fi
    local sources=/etc/apt/sources.list.d/debian.sources mirror rootfs="$WORK/rootfs"
    mirror=$(awk '$1 == "URIs:" { print $2; exit }' "$sources" 2>/dev/null || true)
    mirror=${mirror:-http://deb.debian.org/debian}
    log "making $BASE_IMAGE with debootstrap from $mirror (once; kept for later runs)"
    bounded 900 debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$WORK/debootstrap.log" 2>&1 ||
        { tail -n 20 "$WORK/debootstrap.log"; fail "debootstrap"; }
    if [ -f "$sources" ]; then
        rm -f "$rootfs/etc/apt/sources.list"
        cp "$sources" "$rootfs/etc/apt/sources.list.d/debian.sources"
    fi
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
    tar -C "$rootfs" -c . | bounded 300 podman import --change 'CMD ["bash"]' - "$BASE_IMAGE" >/dev/null ||
        fail "podman import"
    rm -rf "$rootfs"
}

# build NAME LOG ARGS... - podman build, its output in LOG (the end of it printed when it fails)
build() {
    local name=$1 logfile=$2
    shift 2
    log "building $name"
    bounded 1200 podman build "$@" >"$logfile" 2>&1 || { tail -n 40 "$logfile"; fail "podman build $name"; }
}

# host_ca_args - the machine's CA bundle for a build or a container: it has the CA of any TLS-intercepting
# proxy the machine trusts (and is harmless otherwise), so npm reaches its registry from inside
host_ca_args() {
    if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
        printf '%s\n' -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/host-ca.pem:ro
    fi
}
