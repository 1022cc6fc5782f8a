#!/usr/bin/env bash
# CI only: stand-ins for the images docker-compose.yml and deploy/Dockerfile name, for a machine
# that reaches no image registry (this one reaches Debian's packages, not Docker Hub). Users pull
# the official images; nothing here is for them.
#
# Each stand-in is a `debootstrap --variant=minbase bookworm` tree imported as
# debian:bookworm-slim, plus Debian's own package of the server, under exactly the name and tag
# the files use, and behaves as the official image does for what those files use:
#   rust:1.95-bookworm       the host's Rust 1.95 toolchain (none can be downloaded here) and the
#                            host's CA bundle (HTTPS from containers passes a proxy only it trusts)
#   redis:7                  protected mode off when started without a config file
#   postgres:16              POSTGRES_USER/PASSWORD/DB initialised on first start (Debian's 15)
#   memcached:1.6            runs as a non-root user
#   nginx:1.27               reads conf.d/default.conf, logs to the container's output (1.22)
#   prom/prometheus:v2.53.0  /etc/prometheus/prometheus.yml, data in /prometheus (Debian's 2.42)
# An image that already exists locally is left as it is.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

have() { docker image inspect "$1" >/dev/null 2>&1; }

# Builds image $1 from the Dockerfile on standard input, with $work/$2 as its context.
build() {
  local image=$1 context=$work/$2
  mkdir -p "$context"
  cat >"$context/Dockerfile"
  echo "== stand-in $image"
  DOCKER_BUILDKIT=0 docker build --quiet -t "$image" "$context" >/dev/null
}

if ! have debian:bookworm-slim; then
  echo "== stand-in debian:bookworm-slim (debootstrap --variant=minbase bookworm)"
  command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
  debootstrap --variant=minbase bookworm "$work/rootfs" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log"; exit 1; }
  rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/*
  tar -C "$work/rootfs" -c . | docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'CMD ["bash"]' - debian:bookworm-slim >/dev/null
  rm -rf "$work/rootfs"
fi

if ! have rust:1.95-bookworm; then
  toolchain=$(dirname "$(dirname "$(rustup which rustc)")")
  mkdir -p "$work/rust/toolchain"
  cp -a "$toolchain"/{bin,lib,libexec,etc} "$work/rust/toolchain/"
  cp /etc/ssl/certs/ca-certificates.crt "$work/rust/host-ca-certificates.crt"
  build rust:1.95-bookworm rust <<'EOF'
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev pkg-config ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY host-ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY toolchain /usr/local/rust
ENV CARGO_HOME=/usr/local/cargo PATH=/usr/local/rust/bin:/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN rustc --version && cargo --version
EOF
fi

if ! have redis:7; then
  mkdir -p "$work/redis" && cp "$here/standins/redis-entrypoint.sh" "$work/redis/"
  build redis:7 redis <<'EOF'
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server redis-tools \
 && rm -rf /var/lib/apt/lists/*
COPY redis-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
WORKDIR /data
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["redis-server"]
EOF
fi

if ! have postgres:16; then
  mkdir -p "$work/postgres" && cp "$here/standins/postgres-entrypoint.sh" "$work/postgres/"
  build postgres:16 postgres <<'EOF'
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/*
ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
STOPSIGNAL SIGINT
EXPOSE 5432
ENTRYPOINT ["docker-entrypoint.sh"]
EOF
fi

if ! have memcached:1.6; then
  build memcached:1.6 memcached <<'EOF'
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends memcached \
 && rm -rf /var/lib/apt/lists/*
USER memcache
EXPOSE 11211
CMD ["memcached"]
EOF
fi

if ! have nginx:1.27; then
  build nginx:1.27 nginx <<'EOF'
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends nginx-light \
 && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/* \
 && ln -sf /dev/stdout /var/log/nginx/access.log \
 && ln -sf /dev/stderr /var/log/nginx/error.log
STOPSIGNAL SIGQUIT
EXPOSE 80
CMD ["nginx", "-g", "daemon off;"]
EOF
fi

if ! have prom/prometheus:v2.53.0; then
  build prom/prometheus:v2.53.0 prometheus <<'EOF'
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends prometheus \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /prometheus && chown prometheus /prometheus
USER prometheus
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
EOF
fi
