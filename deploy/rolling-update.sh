#!/usr/bin/env bash
# A rolling replacement of the shop's replicas under Docker Compose, which has no rolling update
# of its own: one at a time, a replica of the image `docker compose build shop` made last is
# started and healthy first, then one old replica is stopped. Docker sends it SIGTERM: it
# answers /readyz 503 and closes each connection after its response for DRAIN_SECONDS, then
# finishes what is in flight (within the service's stop_grace_period) and exits. nginx resolves
# the replicas by DNS at request time, so a new replica takes traffic within a second and a
# stopped one leaves; as many replicas serve at every moment as before.
#
# Out of rotation before it stops: Docker's DNS names a replica until it has exited, so nginx
# keeps opening connections to it through its drain, and one that waits in its listener's queue
# when the listener closes is reset after nginx has sent its request (a POST then answers 502,
# about 1 replacement in 10 under load). So the old replica first refuses new connections, with
# a TCP reset to each SYN from inside its own network namespace: nginx sends that request to
# another replica, unsent, while the connections already made finish. That takes root, nsenter
# and nft (Debian: nftables); without them the script says so and goes on with the gap.
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
# The port the replicas listen on inside their containers (deploy/nginx/compose.conf).
port=8080
# Refuses new connections to replica $1 from outside it (its own probes on loopback still pass);
# the table goes with the replica's network namespace when it stops.
refuse_new_connections() {
  local pid
  pid=$(docker inspect --format '{{.State.Pid}}' "$1")
  nsenter --target "$pid" --net nft -f - <<NFT
table inet rolling_update {
  chain input {
    type filter hook input priority 0; policy accept;
    iifname != "lo" tcp dport $port tcp flags & (syn | ack) == syn reject with tcp reset
  }
}
NFT
}
if [ "$(id -u)" -eq 0 ] && command -v nsenter >/dev/null && command -v nft >/dev/null; then
  can_refuse=yes
else
  can_refuse=no
  echo "rolling update: WARNING: without root, nsenter and nft an old replica cannot refuse new" \
    "connections before it stops; a request that reaches it as it closes may answer 502" >&2
fi
started=$(date +%s)
for id in $old; do
  before=$(docker compose ps -q shop | sort)
  docker compose up -d --no-deps --no-recreate --scale "shop=$((count + 1))" --wait shop
  new=$(comm -13 <(echo "$before") <(docker compose ps -q shop | sort))
  # A replica that cannot be taken out is still replaced: stopping here would leave one too many.
  taken_out=""
  if [ "$can_refuse" = yes ]; then
    if refuse_new_connections "$id"; then
      taken_out="; ${id:0:12} refuses new connections"
    else
      echo "rolling update: WARNING: ${id:0:12} could not be made to refuse new connections" >&2
    fi
  fi
  echo "rolling update: ${new:0:12} is up and healthy$taken_out"
  echo "rolling update: stopping ${id:0:12} (it drains first)"
  stop_started=$(date +%s)
  docker stop "$id" >/dev/null
  echo "rolling update: ${id:0:12} stopped in $(($(date +%s) - stop_started)) s"
  # Its warnings and errors go before its log does: a shopper's failed request is explained here.
  docker logs "$id" 2>&1 | grep -E ' (WARN|ERROR) ' | tail -20 | sed "s/^/  ${id:0:12}: /" || true
  docker rm "$id" >/dev/null
done
echo "rolling update: $count replicas replaced in $(($(date +%s) - started)) s"
