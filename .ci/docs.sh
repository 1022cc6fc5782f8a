#!/usr/bin/env bash
# Every command the README and docs/ show a reader, run as a reader runs it: from the repository
# root, in the docs' own words, at most followed by flags that shorten a run or put its report
# elsewhere. `.ci/doc_commands.py` lists them (```sh blocks and commands in tables) and fails
# first, before anything is built, when one is run nowhere in CI. The compose and `docker build`
# commands run in .ci/compose.sh, where the engine is; the test command is .ci/run's own.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
source .ci/services.sh
started=$(date +%s)

echo "== the commands the docs show are the ones CI runs"
python3 .ci/doc_commands.py check

ensure_postgres
ensure_redis
ensure_memcached
ensure_nginx
ensure_pyyaml
ensure_kubectl
command -v curl >/dev/null || apt_install curl
# kubectl must never reach a cluster from here (with no configuration it tries localhost:8080,
# where the shop listens): every kubectl command below is client-side.
export KUBECONFIG=/nonexistent
work=$(mktemp -d)
serving=""
cluster_pids=()
passed=0
ok() {
  passed=$((passed + 1))
  echo "   ok: $*"
}
fail() {
  echo "docs: $*" >&2
  exit 1
}

# Starts the shop as the docs show it, in a process group of its own, and waits until it answers
# /readyz on 127.0.0.1:8080 (a first build included) with its sessions in the expected store.
serve() { # store, command line
  local store=$1 command=$2
  echo "== $command"
  setsid bash -c "$command" >"$work/serve.log" 2>&1 &
  serving=$!
  local deadline=$((SECONDS + 900))
  until curl -fsS -o /dev/null http://127.0.0.1:8080/readyz 2>/dev/null; do
    if ! kill -0 "$serving" 2>/dev/null || [ $SECONDS -gt $deadline ]; then
      tail -30 "$work/serve.log"
      fail "\`$command\` did not serve on 127.0.0.1:8080"
    fi
    sleep 1
  done
  grep -q "Sessions are kept in the $store store" "$work/serve.log" \
    || { tail -30 "$work/serve.log"; fail "\`$command\` serves, but not with its sessions in $store"; }
  ok "\`$command\` serves on 127.0.0.1:8080, sessions in $store"
}

# Ctrl-C, as a reader stops it: SIGINT to the served group (cargo and the shop), then wait until
# nothing of it is left.
stop_serving() {
  [ -n "$serving" ] || return 0
  kill -INT -- "-$serving" 2>/dev/null || true
  for _ in $(seq 100); do
    pgrep -g "$serving" >/dev/null || break
    sleep 0.2
  done
  kill -KILL -- "-$serving" 2>/dev/null || true
  wait "$serving" 2>/dev/null || true
  serving=""
}

# Three Redis Cluster masters on 127.0.0.1:7000-7002, the address the stores table names.
start_redis_cluster() {
  for port in 7000 7001 7002; do
    mkdir -p "$work/cluster/$port"
    redis-server --port "$port" --bind 127.0.0.1 --cluster-enabled yes --save "" \
      --appendonly no --dir "$work/cluster/$port" --logfile "$work/cluster/$port/log" &
    cluster_pids+=($!)
  done
  for port in 7000 7001 7002; do
    wait_for "Redis on $port" sh -c "redis-cli -p $port ping | grep -q PONG"
  done
  redis-cli --cluster create 127.0.0.1:7000 127.0.0.1:7001 127.0.0.1:7002 --cluster-yes >/dev/null
  wait_for "the cluster's slots" sh -c "redis-cli -p 7000 cluster info | grep -q 'cluster_state:ok'"
}

cleanup() {
  stop_serving
  for pid in "${cluster_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== the shop on each store, as the README's two commands and its stores table start it"
serve sqlite "cargo run"
curl -s http://127.0.0.1:8080/readyz | tee "$work/readyz"
grep -qx ready "$work/readyz" || fail "/readyz did not answer ready"
curl -s http://127.0.0.1:8080/metrics | grep '^shop_http_requests_total' | tee "$work/metrics"
grep -q 'route="/readyz"' "$work/metrics" || fail "/metrics does not count the /readyz requests just made"
ok "the curl examples answer as docs/deploy.md says"
cargo run -- healthcheck && echo healthy || fail "the healthcheck failed while the shop served"
stop_serving
if cargo run --quiet -- healthcheck 2>/dev/null; then
  fail "the healthcheck passed with no shop running"
fi
ok "\`cargo run -- healthcheck\` passes while the shop serves and fails once it stopped"

serve redis "cargo run --features redis"
stop_serving
start_redis_cluster
serve redis "REDIS_CLUSTER_NODES=redis://127.0.0.1:7000 cargo run --features redis"
grep -q "master" "$work/serve.log" || fail "the cluster's masters are not logged at start-up"
stop_serving
serve postgres "SESSION_DATABASE_URL=postgres://postgres@127.0.0.1/postgres cargo run --features postgres"
stop_serving
serve memcached "cargo run --features memcached"
stop_serving
serve memory "SESSION_BACKEND=memory cargo run"
stop_serving

echo "== the lab, on every store (two shoppers: a short run)"
mkdir -p "$work/lab"
cargo run -p shop-lab -- --store redis --replicas 3 --shoppers 2 --report "$work/lab/redis.md"
for store in sqlite postgres memcached redis-cluster; do
  cargo run -p shop-lab -- --store "$store" --shoppers 2 --report "$work/lab/$store.md"
done
for store in redis sqlite postgres memcached redis-cluster; do
  grep -q "nothing lost" "$work/lab/$store.md" || fail "the lab's report on $store does not say nothing was lost"
done
ok "the lab kept every shopper on every store and wrote its reports"
bash .ci/build-previous.sh && cargo run -p shop-lab -- --store redis --deploy --shoppers 4
ok "the lab's deploy and rollback beside the previous release lost nothing"
# From any directory: the lab carries deploy/nginx's files in itself.
(cd "$work" && "$root/target/debug/lab" --store sqlite --shoppers 1 --report "$work/lab/elsewhere.md" >/dev/null)
ok "the lab runs from another directory"
if LAB_NGINX_DIR=$work/nowhere "$root/target/debug/lab" --store sqlite --shoppers 1 2>"$work/lab/error"; then
  fail "the lab ran with LAB_NGINX_DIR naming a folder that does not exist"
fi
grep -q LAB_NGINX_DIR "$work/lab/error" || fail "the lab's error does not name LAB_NGINX_DIR: $(cat "$work/lab/error")"
ok "a LAB_NGINX_DIR without the files stops the lab with an error naming it"

echo "== the benchmark, each command in a smoke run (one short run; reports in a scratch folder)"
# PATH without cargo: --help must answer before anything is installed or built.
PATH=/usr/bin:/bin bash bench/run --help >"$work/bench-help"
grep -q "usage: bash bench/run" "$work/bench-help" || fail "bench/run --help printed no usage"
ok "\`bash bench/run --help\` answers with the usage before installing or building anything"
results=$work/bench
short=(--runs 1 --seconds 1 --sessions 64 --rss-sessions 1000 --store-sessions 2000 --results "$results")
bench_wrote() { # file: the smoke run wrote it, with figures in it
  [ -s "$results/$1" ] || fail "the benchmark did not write $1"
  grep -qE '[0-9]' "$results/$1" || fail "$1 has no figures"
  rm -f "$results/$1"
}
# --readme writes into a scratch copy of the README (BENCH_README), not the checkout's.
cp README.md "$work/README.md"
BENCH_README="$work/README.md" bash bench/run --readme --stores sqlite --paths read "${short[@]}"
grep -q "^| sqlite | " "$work/README.md" || fail "--readme wrote no decision table into the README"
bench_wrote latest.md
bash bench/run --quick --stores sqlite --paths read --rss-sessions 1000 --store-sessions 1000 --results "$results"
grep -q "| 1 | shop " "$results/latest.md" || fail "--quick did not make one run a path"
bench_wrote latest.md
bash bench/run --stores redis,sqlite --paths write,mix "${short[@]}"
grep -q "The latency curve" "$results/latest.md" || fail "the mix drew no latency curve"
[ -s "$results/curve.svg" ] || fail "the benchmark did not write curve.svg"
bench_wrote latest.md
bash bench/run --flames --stores sqlite --paths read "${short[@]}"
ls "$results"/flame-sqlite-read*.svg >/dev/null || fail "--flames drew no flame graph"
bash bench/run --paths read,write --runs 5 --seconds 10 --stores redis "${short[@]}"
bench_wrote latest.md
bash bench/run --instructions --stores sqlite --results "$results"
bench_wrote instructions.md
bash bench/run --peer --stores redis --paths read "${short[@]}"
grep -q peer "$results/latest.md" || fail "--peer measured no peer"
bench_wrote latest.md
bash bench/run --store-memory --stores redis "${short[@]}"
bench_wrote store-memory.md
ok "every benchmark command started, measured and wrote its report"

echo "== the Kubernetes commands, on paper (no cluster here)"
kubectl create secret generic shop-secrets \
  --from-literal=SESSION_SECRET=$(openssl rand -hex 64) \
  --from-literal=POSTGRES_PASSWORD=$(openssl rand -hex 16) \
  --from-literal=REDIS_PASSWORD=$(openssl rand -hex 24) --dry-run=client -o yaml >"$work/secret.yaml"
python3 .ci/kubectl-on-paper.py --secret "$work/secret.yaml"
for command in "kubectl apply -k deploy/k8s/overlays/redis" \
  "kubectl port-forward service/shop 8080:80" \
  "kubectl scale deployment/shop --replicas=5" \
  "kubectl delete pod -l app.kubernetes.io/name=shop --wait=false" \
  "kubectl delete pod redis-cluster-0"; do
  echo "$command"
  python3 .ci/kubectl-on-paper.py "$command"
done
ok "every kubectl command names objects, labels and keys the manifests have"

echo "docs: $passed checks of the commands the docs show, in $(($(date +%s) - started)) s"
