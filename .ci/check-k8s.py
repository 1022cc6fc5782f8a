"""Checks deploy/k8s on paper, since no cluster is reachable here: every overlay builds with
`kubectl kustomize`, every object validates against the Kubernetes OpenAPI schema
(`kubernetes-validate --strict`), and the topology is the one the tests run with local
processes: three replicas, no session affinity, probes on /healthz and /readyz, the secret never
inlined, and the same environment variables as docker-compose.yml."""
import re
import subprocess
import sys
import tempfile

import yaml

KUBERNETES_VERSION = "1.37.0"
OVERLAYS = {
    "redis": "redis",
    "redis-cluster": "redis",
    "postgres": "postgres",
    "memcached": "memcached",
}

with open("docker-compose.yml") as f:
    compose = yaml.safe_load(f)
compose_env = set(compose["services"]["shop"]["environment"])

problems = []


def check(overlay, backend):
    def problem(text):
        problems.append(f"{overlay}: {text}")

    built = subprocess.run(
        ["kubectl", "kustomize", f"deploy/k8s/overlays/{overlay}"],
        capture_output=True, text=True,
    )
    if built.returncode != 0:
        problem(f"kubectl kustomize failed: {built.stderr.strip()}")
        return
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as out:
        out.write(built.stdout)
        out.flush()
        valid = subprocess.run(
            ["kubernetes-validate", "--strict", "--quiet", "-k", KUBERNETES_VERSION, out.name],
            capture_output=True, text=True,
        )
    if valid.returncode != 0:
        problem(f"schema: {valid.stdout.strip()} {valid.stderr.strip()}")
    docs = [d for d in yaml.safe_load_all(built.stdout) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d

    if "Secret" in by_kind:
        problem("a Secret is in the manifests: it must be created out of band, never committed")
    deployment = by_kind.get("Deployment", {}).get("shop")
    if not deployment:
        problem("no Deployment named shop")
        return
    spec = deployment["spec"]
    if spec.get("replicas") != 3:
        problem(f"the shop runs {spec.get('replicas')} replicas, not 3")
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    if container.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/healthz":
        problem("the liveness probe is not GET /healthz")
    if container.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz":
        problem("the readiness probe is not GET /readyz")
    if spec.get("strategy", {}).get("rollingUpdate", {}).get("maxUnavailable") != 0:
        problem("a rolling update may take a replica away before its replacement is ready (maxUnavailable must be 0)")
    pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    config_maps = [
        cm for name, cm in by_kind.get("ConfigMap", {}).items() if name.startswith("shop-config")
    ]
    drain = int(config_maps[0]["data"].get("DRAIN_SECONDS", 6)) if len(config_maps) == 1 else 6
    # SHUTDOWN_SECONDS in src/startup.rs: what requests in flight get once the drain is over.
    in_flight = 30
    if not pre_stop or pre_stop[0] != "sleep":
        problem("no preStop pause")
    elif pod.get("terminationGracePeriodSeconds", 30) <= int(pre_stop[1]) + drain + in_flight:
        problem(
            "terminationGracePeriodSeconds leaves no room for the pause, the drain "
            f"({drain} s) and the requests in flight ({in_flight} s)"
        )
    security = container.get("securityContext", {})
    if not pod.get("securityContext", {}).get("runAsNonRoot") or security.get("allowPrivilegeEscalation") is not False:
        problem("the shop must run as non-root without privilege escalation")
    if not security.get("readOnlyRootFilesystem"):
        problem("the shop's root filesystem must be read-only")
    resources = container.get("resources", {})
    if not resources.get("requests") or not resources.get("limits"):
        problem("the shop needs resource requests and limits")

    config_maps = [
        cm for name, cm in by_kind.get("ConfigMap", {}).items() if name.startswith("shop-config")
    ]
    if len(config_maps) != 1:
        problem("one shop-config ConfigMap expected")
        return
    config = config_maps[0]["data"]
    env = {e["name"]: e for e in container.get("env", [])}
    names = set(config) | set(env)
    if "SESSION_SECRET" in config:
        problem("SESSION_SECRET is in the ConfigMap")
    if env.get("SESSION_SECRET", {}).get("valueFrom", {}).get("secretKeyRef", {}).get("name") != "shop-secrets":
        problem("SESSION_SECRET must come from the shop-secrets Secret")
    for name, e in env.items():
        if "value" in e and "password" in name.lower():
            problem(f"{name} is inlined")
    missing = compose_env - names
    # INSTANCE_NAME: each pod is named from its own name; compose's replicas of one service take
    # the default, their container's host name.
    extra = names - compose_env - {"POSTGRES_PASSWORD", "INSTANCE_NAME"}
    if missing:
        problem(f"variables the compose file sets are missing: {sorted(missing)}")
    if extra:
        problem(f"variables the compose file does not set: {sorted(extra)}")
    if config.get("SESSION_BACKEND") != backend:
        problem(f"SESSION_BACKEND is {config.get('SESSION_BACKEND')}, not {backend}")

    service = by_kind.get("Service", {}).get("shop", {})
    if service.get("spec", {}).get("sessionAffinity", "None") != "None":
        problem("the shop's Service must have no session affinity")
    for name, svc in by_kind.get("Service", {}).items():
        if svc["spec"].get("sessionAffinity") == "ClientIP":
            problem(f"Service {name} pins clients (sessionAffinity: ClientIP)")
    annotations = spec["template"]["metadata"].get("annotations", {})
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    if annotations.get("prometheus.io/scrape") != "true" or annotations.get("prometheus.io/port") != config.get("METRICS_PORT") or str(ports.get("metrics")) != config.get("METRICS_PORT"):
        problem("the metrics listener must be a port of its own with Prometheus scrape annotations")
    if config.get("METRICS_PORT") in {str(p["targetPort"]) for p in service.get("spec", {}).get("ports", [])}:
        problem("the Service must not expose the metrics port")

    pdb = by_kind.get("PodDisruptionBudget", {}).get("shop", {})
    if pdb.get("spec", {}).get("maxUnavailable") != 1:
        problem("a PodDisruptionBudget must keep all but one replica")
    hpa = by_kind.get("HorizontalPodAutoscaler", {}).get("shop", {})
    if hpa.get("spec", {}).get("scaleTargetRef", {}).get("name") != "shop" or hpa["spec"].get("minReplicas", 0) < 3:
        problem("a HorizontalPodAutoscaler must scale the shop from 3")
    ingress = by_kind.get("Ingress", {}).get("shop", {})
    if not ingress.get("spec", {}).get("tls"):
        problem("the Ingress must terminate TLS")
    if config.get("COOKIE_SECURE") != "true" or config.get("APP_ENV") != "production":
        problem("behind TLS the shop runs in production with Secure cookies")
    if not config.get("TRUSTED_PROXIES"):
        problem("TRUSTED_PROXIES must name the ingress controller's network")
    controller = by_kind.get("Service", {}).get("ingress-nginx-controller", {})
    if controller.get("spec", {}).get("externalTrafficPolicy") != "Local":
        problem("the ingress controller's Service must keep the client's address (externalTrafficPolicy: Local)")

    # Only the ingress controller reaches the shop, only the shop reaches the stores.
    policies = by_kind.get("NetworkPolicy", {})
    shop_policy = policies.get("shop", {}).get("spec", {})
    shop_from = [peer for rule in shop_policy.get("ingress", []) for peer in rule.get("from", [])
                 if any(p.get("port") == "http" for p in rule.get("ports", []))]
    if shop_policy.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name") != "shop" or [
        (p.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name"),
         p.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component"))
        for p in shop_from
    ] != [("ingress-nginx", "controller")]:
        problem("a NetworkPolicy must let only the ingress controller reach the shop's port")
    store_ports = {"postgres": 5432, {"redis": "redis", "redis-cluster": "redis-cluster", "postgres": None, "memcached": "memcached"}[overlay]: None}
    for name in [n for n in store_ports if n]:
        rules = policies.get(name, {}).get("spec", {}).get("ingress", [])
        outside = [
            peer for rule in rules for peer in rule.get("from", [])
            if peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name")
            not in {"shop", "redis-cluster", "redis-cluster-join"} or "namespaceSelector" in peer
        ]
        if not rules or outside:
            problem(f"a NetworkPolicy must let only the shop reach {name}")
    if config.get("TRUSTED_PROXIES") in {"10.0.0.0/8", "0.0.0.0/0"}:
        problem("TRUSTED_PROXIES must be the pod network, not every private address")
    if env.get("REDIS_PASSWORD", {}).get("valueFrom", {}).get("secretKeyRef", {}).get("key") != "REDIS_PASSWORD":
        problem("REDIS_PASSWORD must come from the Secret")
    for name, workload in [*by_kind.get("Deployment", {}).items(), *by_kind.get("StatefulSet", {}).items()]:
        for c in workload["spec"]["template"]["spec"]["containers"]:
            if c.get("image", "").startswith("redis"):
                args = c.get("args", [])
                if "--requirepass" not in args or args[args.index("--requirepass") + 1] != "$(REDIS_PASSWORD)":
                    problem(f"{name} must run with --requirepass $(REDIS_PASSWORD)")
                auth = {e["name"]: e for e in c.get("env", [])}.get("REDISCLI_AUTH", {})
                if "secretKeyRef" not in auth.get("valueFrom", {}):
                    problem(f"{name}'s probe must authenticate (REDISCLI_AUTH from the Secret)")
                if name == "redis" and (
                    "--maxmemory" not in args
                    or args[args.index("--maxmemory-policy") + 1] != "noeviction"
                ):
                    problem("Redis needs a --maxmemory and evicts nothing (noeviction)")
    sign_in = by_kind.get("Ingress", {}).get("shop-sign-in", {})
    notes = sign_in.get("metadata", {}).get("annotations", {})
    paths = {p["path"] for rule in sign_in.get("spec", {}).get("rules", []) for p in rule["http"]["paths"]}
    with open("deploy/nginx/compose.conf") as f:
        nginx_conf = f.read()
    rate = re.search(r"zone=sign_in:\S+ rate=(\d+)r/s", nginx_conf)
    burst = re.search(r"limit_req zone=sign_in burst=(\d+)", nginx_conf)
    if paths != {"/login", "/register"} or not rate or not burst or (
        notes.get("nginx.ingress.kubernetes.io/limit-rps"),
        int(notes.get("nginx.ingress.kubernetes.io/limit-burst-multiplier", 5)) * int(notes.get("nginx.ingress.kubernetes.io/limit-rps", 0)),
    ) != (rate.group(1), int(burst.group(1))):
        problem("the Ingress must limit /login and /register as nginx does (rate and burst)")
    controller_config = by_kind.get("ConfigMap", {}).get("ingress-nginx-controller", {}).get("data", {})
    if controller_config.get("limit-req-status-code") != "429":
        problem("the ingress controller must answer a rate limit with 429")

    if overlay == "redis-cluster":
        nodes = by_kind.get("StatefulSet", {}).get("redis-cluster", {})
        args = nodes.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [{}])[0].get("args", [])
        if nodes.get("spec", {}).get("replicas") != 6 or "--cluster-enabled" not in args:
            problem("the Redis Cluster must be a StatefulSet of 6 with cluster mode on")
        job = by_kind.get("Job", {}).get("redis-cluster-join", {})
        script = " ".join(job.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [{}])[0].get("command", []))
        if "--cluster create" not in script or "--cluster-replicas 1" not in script:
            problem("a Job must join the nodes, one replica per master")
        if not config.get("REDIS_CLUSTER_NODES") or config.get("REDIS_MIN_REPLICAS_ACK") != "1":
            problem("the replicas must use the cluster and wait for a replica")
    if overlay == "redis":
        redis = by_kind.get("Deployment", {}).get("redis", {}).get("spec", {})
        pod = redis.get("template", {}).get("spec", {})
        args = pod.get("containers", [{}])[0].get("args", [])
        claims = [v.get("persistentVolumeClaim", {}).get("claimName") for v in pod.get("volumes", [])]
        if "--appendonly" not in args or args[args.index("--appendonly") + 1] != "yes":
            problem("Redis must keep sessions through a restart (--appendonly yes)")
        if not claims or not all(c in by_kind.get("PersistentVolumeClaim", {}) for c in claims):
            problem("Redis's append-only file must be on a PersistentVolumeClaim")
        if redis.get("strategy", {}).get("type") != "Recreate":
            problem("one Redis pod at a time holds the volume (strategy: Recreate)")
    if overlay == "memcached":
        svc = by_kind.get("Service", {}).get("memcached", {})
        servers = by_kind.get("StatefulSet", {}).get("memcached", {})
        expected = ",".join(
            f"memcached-{i}.memcached:11211" for i in range(servers.get("spec", {}).get("replicas", 0))
        )
        if svc.get("spec", {}).get("clusterIP") != "None":
            problem("Memcached must be addressed through a headless Service")
        if config.get("MEMCACHED_SERVERS") != expected or servers["spec"]["replicas"] < 2:
            problem(f"MEMCACHED_SERVERS must name every Memcached pod ({expected})")


for overlay, backend in OVERLAYS.items():
    check(overlay, backend)
if problems:
    sys.exit("deploy/k8s: " + "; ".join(problems))
print(
    f"deploy/k8s: {len(OVERLAYS)} overlays build and validate against Kubernetes "
    f"{KUBERNETES_VERSION}; 3 replicas, no affinity, probes, secret out of band, compose's variables, the client's address kept, NetworkPolicies, store passwords, the sign-in limits"
)
