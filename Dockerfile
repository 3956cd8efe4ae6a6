# smtpfault: a fake SMTP server for fault injection, as a container image (docs/docker.md).
#
#   docker build -t smtpfault .          podman build --format docker -t smtpfault .
#   docker run --rm -p 127.0.0.1:2525:2525 smtpfault        (admin: docker exec CONTAINER smtpfault ctl ...)
#
# Two stages. The build stage compiles with the Debian packages `make` uses (.ci/install-deps) and installs
# into /staging, then adds the shared libraries the binary loads (found with ldd, so any architecture works)
# and their copyright files. The final stage is that tree and nothing else: no shell, no package manager.
# podman: build with --format docker (or BUILDAH_FORMAT=docker), or the OCI format drops HEALTHCHECK.

FROM debian:bookworm-slim AS build
# The build packages of .ci/install-deps; libc6-dev is what --no-install-recommends leaves out of gcc.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        cmake make gcc libc6-dev pkg-config libuv1-dev libwolfssl-dev libcjson-dev libhttp-parser-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY server/ server/
COPY faults/ faults/
# The project's default build type (RelWithDebInfo), stripped on install; the profiles land in
# /usr/share/smtpfault/profiles, where --profile NAME looks for them.
RUN cmake -S . -B /build -DSMTPFAULT_TESTS=OFF -DSMTPFAULT_INSTALL_DOCS=OFF -DCMAKE_INSTALL_PREFIX=/usr \
 && cmake --build /build -j "$(nproc)" \
 && DESTDIR=/staging cmake --install /build --strip
RUN set -eu; \
    mkdir -p /staging/usr/share/smtpfault/profiles /staging/etc /staging/tmp /volumes/certs /volumes/mail; \
    for lib in $(ldd /staging/usr/bin/smtpfault | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do \
        cp -L --parents "$lib" /staging; \
        real=$(readlink -f "$lib"); \
        pkg=$(for p in "$lib" "$real" "/usr$lib" "${real#/usr}"; do dpkg -S "$p" 2>/dev/null || true; done \
              | head -n 1 | cut -d: -f1); \
        mkdir -p "/staging/usr/share/doc/$pkg"; \
        cp "/usr/share/doc/$pkg/copyright" "/staging/usr/share/doc/$pkg/"; \
    done; \
    echo 'smtpfault:x:10001:10001:smtpfault:/nonexistent:/usr/sbin/nologin' > /staging/etc/passwd; \
    echo 'smtpfault:x:10001:' > /staging/etc/group; \
    chmod 1777 /staging/tmp; \
    /staging/usr/bin/smtpfault --version

FROM scratch
COPY --from=build /staging/ /
# The server's own directories, so that a fresh volume mounted there is writable: /certs for the test PKI,
# /mail for SMTPFAULT_STORE_DIR=/mail (not set: mount a volume and set it to keep messages on disk). They
# are items of the copied directory, not the destination, so --chown applies to them under every builder.
COPY --from=build --chown=10001:10001 /volumes/ /
USER 10001:10001
# The SMTP listeners on every interface of the container (publish the ports to choose who reaches them).
# The admin socket controls the server: on the container's loopback only, for `docker exec ... smtpfault
# ctl` and the health check. To reach it from other containers or the host, set SMTPFAULT_ADMIN=0.0.0.0:2580,
# SMTPFAULT_ADMIN_REMOTE=true and SMTPFAULT_ADMIN_TOKEN (docs/docker.md). The CA clients trust is
# /certs/ca.pem.
ENV SMTPFAULT_SMTP=0.0.0.0:2525 \
    SMTPFAULT_SUBMISSION=0.0.0.0:2587 \
    SMTPFAULT_SMTPS=0.0.0.0:2465 \
    SMTPFAULT_ADMIN=127.0.0.1:2580 \
    SMTPFAULT_CERTS_DIR=/certs
VOLUME /certs
# 2580, the admin port (NDJSON, and HTTP: the API and the web page at /), is not exposed: it listens on the
# container's loopback until SMTPFAULT_ADMIN opens it (the compose file does, and publishes it).
EXPOSE 2525 2587 2465
# ctl reads SMTPFAULT_ADMIN and SMTPFAULT_ADMIN_TOKEN as the server does (0.0.0.0 is reached on loopback).
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/bin/smtpfault", "ctl", "ping"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/smtpfault"]
