"""Checks docker-compose.yml on paper, since no Docker engine runs here: it parses, and it has
the topology the proof test runs with local processes (nginx with round-robin.conf in front of
three replicas that share one secret, and the three stores)."""
import sys

import yaml

with open("docker-compose.yml") as f:
    compose = yaml.safe_load(f)

services = compose["services"]
problems = []
for name in ["nginx", "shop1", "shop2", "shop3", "postgres", "redis", "memcached"]:
    if name not in services:
        problems.append(f"service {name} is missing")
nginx = services.get("nginx", {})
if not any("round-robin.conf" in v for v in nginx.get("volumes", [])):
    problems.append("nginx does not use deploy/nginx/round-robin.conf")
replicas = [services.get(f"shop{i}", {}) for i in (1, 2, 3)]
secrets = {r.get("environment", {}).get("SESSION_SECRET") for r in replicas}
if len(secrets) != 1 or None in secrets:
    problems.append("the replicas must share one SESSION_SECRET")
names = {r.get("environment", {}).get("INSTANCE_NAME") for r in replicas}
if len(names) != 3:
    problems.append("each replica needs its own INSTANCE_NAME")
for r in replicas:
    if r.get("build", {}).get("dockerfile") != "deploy/Dockerfile":
        problems.append("a replica is not built from deploy/Dockerfile")
    if "condition" not in str(r.get("depends_on", {})):
        problems.append("a replica's depends_on has no conditions")
env = replicas[0].get("environment", {})
nginx_address = (
    nginx.get("networks", {}).get("default", {}).get("ipv4_address")
    if isinstance(nginx.get("networks"), dict)
    else None
)
if not nginx_address or env.get("TRUSTED_PROXIES") != nginx_address:
    problems.append("the replicas must trust nginx's fixed address in TRUSTED_PROXIES")
if not env.get("METRICS_PORT"):
    problems.append("the replicas need a METRICS_PORT listener for Prometheus")
with open("deploy/prometheus.yml") as f:
    prometheus = yaml.safe_load(f)
targets = [t for job in prometheus["scrape_configs"] for c in job["static_configs"] for t in c["targets"]]
if sorted(targets) != [f"shop{i}:{env.get('METRICS_PORT')}" for i in (1, 2, 3)]:
    problems.append("deploy/prometheus.yml must scrape each replica's metrics port")
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
join_dependency = replicas[0].get("depends_on", {}).get("redis-cluster-join", {})
if join_dependency.get("condition") != "service_completed_successfully" or join_dependency.get("required") is not False:
    problems.append("the replicas must wait for the join job when the cluster profile is on, and only then")
if problems:
    sys.exit("docker-compose.yml: " + "; ".join(problems))
print("docker-compose.yml: parses, 3 replicas behind round-robin nginx, one shared secret, a 6-node Redis Cluster profile")
