"""A kubectl command docs/deploy.md shows, checked on paper against the manifests it would act on,
since no cluster is reachable here: every object, label and secret key it names must exist in
the overlays as `kubectl kustomize` builds them (their schema is .ci/check-k8s.py's).

  kubectl-on-paper.py "kubectl scale deployment/shop --replicas=5"
  kubectl-on-paper.py --secret FILE   FILE: a Secret as `kubectl create secret … --dry-run=client
                                      -o yaml` wrote it; it must hold every key the manifests read
"""
import glob
import shlex
import subprocess
import sys

import yaml

KINDS = {"deployment": "Deployment", "service": "Service", "statefulset": "StatefulSet", "pod": "Pod"}


def build(directory):
    built = subprocess.run(["kubectl", "kustomize", directory], capture_output=True, text=True)
    if built.returncode != 0:
        sys.exit(f"kubectl kustomize {directory} failed: {built.stderr.strip()}")
    return [d for d in yaml.safe_load_all(built.stdout) if d]


def every_overlay():
    return {d: build(d) for d in sorted(glob.glob("deploy/k8s/overlays/*"))}


def pods(objects):
    """(name prefix, labels) of the pods the workloads run."""
    for o in objects:
        if o["kind"] in ("Deployment", "StatefulSet"):
            replicas = o["spec"].get("replicas", 1)
            labels = o["spec"]["template"]["metadata"].get("labels", {})
            names = (
                [f"{o['metadata']['name']}-{i}" for i in range(replicas)]
                if o["kind"] == "StatefulSet"
                else []
            )
            yield o, names, labels


def check_command(command):
    words = shlex.split(command)
    if words[:1] != ["kubectl"] or len(words) < 3:
        sys.exit(f"not a kubectl command: {command}")
    verb, args = words[1], words[2:]
    if verb == "apply" and args[:1] == ["-k"]:
        objects = build(args[1])
        return f"{len(objects)} objects build from {args[1]}"
    overlays = every_overlay()
    everything = [o for objects in overlays.values() for o in objects]
    found = []
    for i, arg in enumerate(args):
        if arg == "-l":
            key, value = args[i + 1].split("=", 1)
            matching = [o for o, _, labels in pods(everything) if labels.get(key) == value]
            if not matching:
                sys.exit(f"`{command}`: no pod template is labelled {key}={value}")
            found.append(f"pods of {matching[0]['kind']} {matching[0]['metadata']['name']}")
        elif "/" in arg and not arg.startswith("-") and arg.split("/")[0] in KINDS:
            kind, name = arg.split("/", 1)
            named = [o for o in everything if o["kind"] == KINDS[kind] and o["metadata"]["name"] == name]
            if not named:
                sys.exit(f"`{command}`: no {KINDS[kind]} named {name} in any overlay")
            found.append(f"{KINDS[kind]} {name}")
            if verb == "port-forward":
                port = int(args[i + 1].split(":")[1])
                ports = [p["port"] for o in named for p in o["spec"]["ports"]]
                if port not in ports:
                    sys.exit(f"`{command}`: Service {name} has ports {ports}, not {port}")
            if verb == "scale":
                wanted = int(next(a for a in args if a.startswith("--replicas=")).split("=")[1])
                for hpa in (o for o in everything if o["kind"] == "HorizontalPodAutoscaler"):
                    if hpa["spec"]["scaleTargetRef"]["name"] == name and not (
                        hpa["spec"].get("minReplicas", 1) <= wanted <= hpa["spec"]["maxReplicas"]
                    ):
                        sys.exit(f"`{command}`: the autoscaler keeps {name} outside {wanted}")
        elif verb == "delete" and args[0] == "pod" and i == 1 and not arg.startswith("-"):
            owners = [o for o, names, _ in pods(everything) if arg in names]
            if not owners:
                sys.exit(f"`{command}`: no workload in any overlay runs a pod named {arg}")
            found.append(f"pod {arg} of {owners[0]['kind']} {owners[0]['metadata']['name']}")
    if not found:
        sys.exit(f"`{command}`: nothing in it could be checked on paper")
    return ", ".join(found)


def check_secret(path):
    secret = yaml.safe_load(open(path))
    keys = set(secret.get("data", {}))
    name = secret["metadata"]["name"]
    read = set()
    for objects in every_overlay().values():
        for o in objects:
            for container in (
                o.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
            ):
                for env in container.get("env", []):
                    ref = env.get("valueFrom", {}).get("secretKeyRef")
                    if ref and ref["name"] == name:
                        read.add(ref["key"])
                for source in container.get("envFrom", []):
                    if source.get("secretRef", {}).get("name") == name:
                        read |= keys
    if not read:
        sys.exit(f"no manifest reads the secret {name}")
    if read - keys:
        sys.exit(f"the manifests read {sorted(read - keys)} from {name}, which docs/deploy.md's command does not create")
    return f"Secret {name} holds {', '.join(sorted(keys))}, every key the manifests read"


if __name__ == "__main__":
    if sys.argv[1:2] == ["--secret"]:
        print("   on paper:", check_secret(sys.argv[2]))
    elif len(sys.argv) == 2:
        print("   on paper:", check_command(sys.argv[1]))
    else:
        sys.exit(__doc__)
