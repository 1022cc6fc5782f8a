#!/usr/bin/env bash
# A rolling replacement of the shop's replicas under Docker Compose, which has no rolling update
# of its own: one at a time, a replica of the image `docker compose build shop` made last is
# started and healthy first, then one old replica is stopped. Docker sends it SIGTERM: it
# answers /readyz 503 and closes each connection after its response for DRAIN_SECONDS, then
# finishes what is in flight (within the service's stop_grace_period) and exits. nginx resolves
# the replicas by DNS at request time, so a new replica takes traffic within a second and a
# stopped one leaves; as many replicas serve at every moment as before.
#
#   docker compose build shop && bash deploy/rolling-update.sh
#
# From the repository root, with the stack up (`docker compose up -d`). Orchestrators that have
# a rolling update of their own use it instead (Kubernetes: deploy/k8s, maxUnavailable 0).
set -euo pipefail
cd "$(dirname "$0")/.."

old=$(docker compose ps -q shop)
count=$(wc -w <<<"$old")
if [ "$count" -eq 0 ]; then
  echo "no shop replica is running: start the stack first (docker compose up -d)" >&2
  exit 1
fi
started=$(date +%s)
for id in $old; do
  before=$(docker compose ps -q shop | sort)
  docker compose up -d --no-deps --no-recreate --scale "shop=$((count + 1))" --wait shop
  new=$(comm -13 <(echo "$before") <(docker compose ps -q shop | sort))
  echo "rolling update: ${new:0:12} is up and healthy; stopping ${id:0:12} (it drains first)"
  stop_started=$(date +%s)
  docker stop "$id" >/dev/null
  echo "rolling update: ${id:0:12} stopped in $(($(date +%s) - stop_started)) s"
  # Its warnings and errors go before its log does: a shopper's failed request is explained here.
  docker logs "$id" 2>&1 | grep -E ' (WARN|ERROR) ' | tail -20 | sed "s/^/  ${id:0:12}: /" || true
  docker rm "$id" >/dev/null
done
echo "rolling update: $count replicas replaced in $(($(date +%s) - started)) s"
