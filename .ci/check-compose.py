"""Checks docker-compose.yml on paper, before .ci/compose.sh runs it for real: it parses, and it
has the topology the proof test runs with local processes (nginx in front of three replicas of
one service that share one secret, and the three stores)."""
import re
import sys

import yaml

with open("docker-compose.yml") as f:
    compose = yaml.safe_load(f)

services = compose["services"]
problems = []
for name in ["nginx", "shop", "postgres", "redis", "memcached"]:
    if name not in services:
        problems.append(f"service {name} is missing")
nginx = services.get("nginx", {})
if not any("deploy/nginx/compose.conf" in v for v in nginx.get("volumes", [])):
    problems.append("nginx does not use deploy/nginx/compose.conf")
with open("deploy/nginx/compose.conf") as f:
    nginx_conf = f.read()
if "resolver 127.0.0.11" not in nginx_conf or "proxy_pass $shop;" not in nginx_conf:
    problems.append("compose.conf must resolve the replicas through Docker's DNS at request time")
if "ip_hash" in nginx_conf or "sticky" in nginx_conf.replace("# ", ""):
    problems.append("compose.conf must have no affinity")
shop = services.get("shop", {})
if shop.get("deploy", {}).get("replicas") != 3:
    problems.append("the shop service must run 3 replicas (deploy.replicas), scaled with --scale")
if shop.get("build", {}).get("dockerfile") != "deploy/Dockerfile":
    problems.append("the shop is not built from deploy/Dockerfile")
if "redis,postgres,memcached" not in str(shop.get("build", {}).get("args", {}).get("FEATURES")):
    problems.append("the image must hold every network store by default")
if "condition" not in str(shop.get("depends_on", {})):
    problems.append("the shop's depends_on has no conditions")
if shop.get("read_only") is not True:
    problems.append("the shop's root filesystem must be read-only")
if shop.get("healthcheck", {}).get("test") != ["CMD", "shop", "healthcheck"]:
    problems.append("the shop's health check must be the binary's own")
env = shop.get("environment", {})
if "INSTANCE_NAME" in env:
    problems.append("replicas of one service cannot share an INSTANCE_NAME: leave the default")
if not env.get("SESSION_SECRET"):
    problems.append("the replicas must share one SESSION_SECRET")
nginx_address = (
    nginx.get("networks", {}).get("default", {}).get("ipv4_address")
    if isinstance(nginx.get("networks"), dict)
    else None
)
if not nginx_address or env.get("TRUSTED_PROXIES") != nginx_address:
    problems.append("the replicas must trust nginx's fixed address in TRUSTED_PROXIES")
if not env.get("METRICS_PORT"):
    problems.append("the replicas need a METRICS_PORT listener for Prometheus")
# A stopped replica drains (DRAIN_SECONDS) and then gives requests in flight 30 s
# (SHUTDOWN_SECONDS in src/startup.rs) before Docker's SIGKILL ends it.
grace = re.fullmatch(r"(\d+)s", str(shop.get("stop_grace_period", "10s")))
if not grace or int(grace.group(1)) < int(env.get("DRAIN_SECONDS", 6)) + 30:
    problems.append("stop_grace_period must cover the drain and 30 s of requests in flight")
with open("deploy/prometheus.yml") as f:
    prometheus = yaml.safe_load(f)
discovered = [
    (name, c.get("port"))
    for job in prometheus["scrape_configs"]
    for c in job.get("dns_sd_configs", [])
    for name in c.get("names", [])
]
if discovered != [("shop", int(env.get("METRICS_PORT", 0)))]:
    problems.append("deploy/prometheus.yml must find the replicas' metrics port by the service's name")
# The cluster profile: six nodes with cluster mode on, a join job making three masters with a
# replica each, and the replicas reading REDIS_CLUSTER_NODES and REDIS_MIN_REPLICAS_ACK.
nodes = {n: s for n, s in services.items() if n.startswith("redis-node-")}
if len(nodes) != 6:
    problems.append(f"the cluster profile needs 6 redis nodes, has {len(nodes)}")
node_addresses = []
for name, node in nodes.items():
    if node.get("profiles") != ["cluster"]:
        problems.append(f"{name} must be in the cluster profile only")
    command = node.get("command", [])
    if "--cluster-enabled" not in command or command[command.index("--cluster-enabled") + 1] != "yes":
        problems.append(f"{name} does not run with --cluster-enabled yes")
    node_addresses.append(node.get("networks", {}).get("default", {}).get("ipv4_address"))
join = services.get("redis-cluster-join", {})
join_command = " ".join(join.get("command", []))
if join.get("profiles") != ["cluster"] or "--cluster create" not in join_command:
    problems.append("a redis-cluster-join job in the cluster profile must run redis-cli --cluster create")
if "--cluster-replicas 1" not in join_command:
    problems.append("the join job must give each master one replica")
for address in node_addresses:
    if not address or f"{address}:6379" not in join_command:
        problems.append(f"the join job does not join the node at {address}")
if set(join.get("depends_on", {})) != set(nodes):
    problems.append("the join job must wait for all six nodes")
for variable in ["REDIS_CLUSTER_NODES", "REDIS_MIN_REPLICAS_ACK"]:
    if variable not in env:
        problems.append(f"the replicas do not pass {variable}")
join_dependency = shop.get("depends_on", {}).get("redis-cluster-join", {})
if join_dependency.get("condition") != "service_completed_successfully" or join_dependency.get("required") is not False:
    problems.append("the replicas must wait for the join job when the cluster profile is on, and only then")
redis = compose["services"].get("redis", {})
command = redis.get("command", [])
if "--appendonly" not in command or command[command.index("--appendonly") + 1] != "yes":
    problems.append("Redis must keep sessions through a restart: --appendonly yes")
if not any(str(v).endswith(":/data") for v in redis.get("volumes", [])):
    problems.append("Redis's append-only file must be on a volume at /data")
# Whoever reaches a store's port is not a shopper: every Redis wants the password, which comes
# from the environment, as PostgreSQL's does (no password is written in the file).
for name, service in [("redis", redis), *nodes.items()]:
    command = service.get("command", [])
    if "--requirepass" not in command or "${REDIS_PASSWORD" not in str(command[command.index("--requirepass") + 1]):
        problems.append(f"{name} must run with --requirepass ${{REDIS_PASSWORD}}")
    if "${REDIS_PASSWORD" not in str(service.get("environment", {}).get("REDISCLI_AUTH")):
        problems.append(f"{name}'s redis-cli (health check) must authenticate with REDISCLI_AUTH")
    if name != "redis" and "--masterauth" not in command:
        problems.append(f"{name} must authenticate to its master (--masterauth)")
if "${REDIS_PASSWORD" not in str(env.get("REDIS_PASSWORD")):
    problems.append("the replicas must pass REDIS_PASSWORD")
postgres = services.get("postgres", {})
if "${POSTGRES_PASSWORD" not in str(postgres.get("environment", {}).get("POSTGRES_PASSWORD")):
    problems.append("PostgreSQL's password must come from POSTGRES_PASSWORD, not the file")
for variable in ["DATABASE_URL", "SESSION_DATABASE_URL"]:
    if "${POSTGRES_PASSWORD" not in str(env.get(variable)):
        problems.append(f"{variable} must carry ${{POSTGRES_PASSWORD}}")
# A full Redis refuses new writes rather than evicting a shopper's session or a login limit.
command = redis.get("command", [])
if "--maxmemory" not in command or "--maxmemory-policy" not in command:
    problems.append("Redis needs a --maxmemory and a --maxmemory-policy")
elif command[command.index("--maxmemory-policy") + 1] != "noeviction":
    problems.append("Redis must evict nothing when full (--maxmemory-policy noeviction)")
if services.get("memcached", {}).get("command") != ["memcached", "-m", "64"]:
    problems.append("Memcached runs with -m 64, the size the flood test gives it")
if problems:
    sys.exit("docker-compose.yml: " + "; ".join(problems))
print("docker-compose.yml: parses, one shop service of 3 replicas behind nginx finding them by DNS, one shared secret, a 6-node Redis Cluster profile, every Redis behind a password, PostgreSQL's from the environment, Redis evicting nothing when full")
