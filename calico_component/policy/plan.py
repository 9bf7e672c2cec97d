"""The policy check's plan: which nodes it samples, the probe pods and policies it creates, the steps and the outcome
each probe must have. Pure: no I/O, no pulumi."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import ConfigurationError
from ..manifest.images import rewrite_image, validate_registry

#: agnhost (Kubernetes' own e2e test image): ``netexec`` listens, ``connect HOST:PORT --timeout`` connects once and
#: exits 0, or 1 with TIMEOUT / REFUSED / OTHER on stderr. Pinned by digest; ``image_registry`` rewrites it.
PROBE_IMAGE = ("registry.k8s.io/e2e-test-images/agnhost:2.53"
               "@sha256:99c6b4bb4a1e1df3f0b3752168c89358794d02258ebebc26bf21c29399011a85")
#: Every object the check creates carries this label, so a later run can sweep what an interrupted one left.
CHECK_LABEL = "calico-oke.io/policy-check"
NODE_POOL_LABEL = "oke.oraclecloud.com/node-pool"
ROLE_LABEL = "calico-oke.io/role"
ALLOWED_PORT = 8080
OTHER_PORT = 8081
#: Every probe pod is stopped by its kubelet after this long, even when the check that made it was killed (a hard
#: Ctrl-C of `pulumi up`): a healthy check takes a few minutes; the namespace itself goes at the next run's sweep.
POD_DEADLINE_SECONDS = 1800
CONNECT_TIMEOUT_SECONDS = 5  # TCP retries its SYN at 1 s and 3 s: a pod Felix learns of moments late still connects

Outcome = Literal["ok", "timeout", "refused", "other", "not-run"]
Client = Literal["labelled", "unlabelled"]
#: ``server``: selected by the ingress policies; ``bystander``: selected by none (it stays reachable but by egress).
Target = Literal["server", "bystander"]
TARGETS: tuple[Target, ...] = ("server", "bystander")
Obj = dict[str, Any]


@dataclass(frozen=True)
class Probe:
    """One connection attempt: from which client, to which pod and port, and what it must do."""

    client: Client
    port: int
    expect: Outcome
    target: Target = "server"

    def describe(self) -> str:
        must = "connect" if self.expect == "ok" else "time out"
        return f"{self.client} client -> {self.target}:{self.port} must {must}"


@dataclass(frozen=True)
class Step:
    """Policies in force (by name, in ``policies()``) and the probes that prove them. Each step that expects a drop
    also has a probe that must connect at the same time (a control: new pods are reachable, so a timeout is the
    policy's doing and not a pod Felix has not programmed yet)."""

    name: str
    policies: tuple[str, ...]
    probes: tuple[Probe, ...]


STEPS: tuple[Step, ...] = (
    Step("no policy", (), (Probe("labelled", ALLOWED_PORT, "ok"), Probe("unlabelled", ALLOWED_PORT, "ok"),
                           Probe("labelled", OTHER_PORT, "ok"), Probe("labelled", ALLOWED_PORT, "ok", "bystander"))),
    Step("default-deny", ("default-deny-ingress",),
         (Probe("labelled", ALLOWED_PORT, "ok", "bystander"), Probe("labelled", ALLOWED_PORT, "timeout"))),
    Step("label allow", ("default-deny-ingress", "allow-labelled-to-8080"),
         (Probe("labelled", ALLOWED_PORT, "ok"), Probe("unlabelled", ALLOWED_PORT, "timeout"),
          Probe("labelled", OTHER_PORT, "timeout"))),
    Step("egress deny", ("default-deny-ingress", "allow-labelled-to-8080", "deny-egress-from-labelled"),
         (Probe("unlabelled", ALLOWED_PORT, "ok", "bystander"), Probe("labelled", ALLOWED_PORT, "timeout"),
          Probe("labelled", ALLOWED_PORT, "timeout", "bystander"))),
)


@dataclass(frozen=True)
class Settings:
    """What the check runs with: the namespace (fresh per run), how many nodes, the probe image, the time budgets."""

    namespace: str
    nodes: int = 3
    image: str = PROBE_IMAGE
    pod_timeout_seconds: float = 120
    settle_seconds: float = 30


def probe_image(image_registry: str | None) -> str:
    """The probe image, moved to ``image_registry`` as Calico's own images are (air-gapped clusters mirror it)."""
    return rewrite_image(PROBE_IMAGE, validate_registry(image_registry)) if image_registry else PROBE_IMAGE


def namespace_name(suffix: str) -> str:
    if not re.fullmatch(r"[a-z0-9]{1,20}", suffix):
        raise ConfigurationError(f"policy check namespace suffix {suffix!r}: expected 1-20 lowercase letters/digits")
    return f"calico-oke-check-{suffix}"


def _ready(node: Mapping[str, Any]) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _group(node: Mapping[str, Any]) -> tuple[str, str]:
    labels = node["metadata"].get("labels") or {}
    os_image = ((node.get("status") or {}).get("nodeInfo") or {}).get("osImage", "")
    return str(labels.get(NODE_POOL_LABEL, "")), str(os_image)


def sample_nodes(nodes: Iterable[Mapping[str, Any]], count: int) -> list[str]:
    """Ready, schedulable nodes to check: one per distinct (node pool, OS image) first, then more up to ``count``."""
    if count < 1:
        raise ConfigurationError(f"nodes to check: {count}; expected 1 or more")
    usable = sorted((n for n in nodes if _ready(n) and not (n.get("spec") or {}).get("unschedulable")),
                    key=lambda n: str(n["metadata"]["name"]))
    chosen: list[str] = []
    groups: set[tuple[str, str]] = set()
    for node in usable:
        if _group(node) not in groups:
            groups.add(_group(node))
            chosen.append(str(node["metadata"]["name"]))
    rest = [str(n["metadata"]["name"]) for n in usable if str(n["metadata"]["name"]) not in chosen]
    return chosen + rest[: max(0, count - len(chosen))]


def _labels(run: str, role: str) -> dict[str, str]:
    return {CHECK_LABEL: run, ROLE_LABEL: role}


def namespace(settings: Settings) -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": settings.namespace, "labels": {CHECK_LABEL: settings.namespace,
                                                                "pod-security.kubernetes.io/enforce": "restricted"}}}


def _container(image: str, args: list[str], ports: Sequence[int] = ()) -> Obj:
    container: Obj = {
        "name": "probe", "image": image, "args": args,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                            "runAsNonRoot": True, "runAsUser": 65534, "seccompProfile": {"type": "RuntimeDefault"}},
    }
    if ports:
        container["ports"] = [{"containerPort": p, "protocol": "TCP"} for p in ports]
    return container


def _pod(settings: Settings, name: str, node: str, role: str, container: Obj, restart: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": settings.namespace,
                         "labels": _labels(settings.namespace, role)},
            "spec": {"nodeName": node, "restartPolicy": restart, "automountServiceAccountToken": False,
                     "terminationGracePeriodSeconds": 0, "activeDeadlineSeconds": POD_DEADLINE_SECONDS,
                     "containers": [container]}}


def _readiness(port: int) -> Obj:
    return {"tcpSocket": {"port": port}, "periodSeconds": 1}


def _listener(image: str, name: str, port: int) -> Obj:
    return {**_container(image, ["netexec", f"--http-port={port}", "--udp-port=-1"], [port]), "name": name,
            "readinessProbe": _readiness(port)}


def server_pod(settings: Settings, node: str, index: int) -> Obj:
    """Listens on both ports (agnhost netexec serves HTTP on one port, UDP off: one container per port)."""
    pod = _pod(settings, f"server-{index}", node, "server", _listener(settings.image, "probe", ALLOWED_PORT), "Always")
    pod["spec"]["containers"].append(_listener(settings.image, "probe-other", OTHER_PORT))
    return pod


def bystander_pod(settings: Settings, node: str, index: int) -> Obj:
    """A listener no ingress policy selects: the controls of the deny steps connect to it."""
    return _pod(settings, f"bystander-{index}", node, "bystander", _listener(settings.image, "probe", ALLOWED_PORT),
                "Always")


def listener_pods(settings: Settings, node: str, index: int) -> dict[Target, Obj]:
    return {"server": server_pod(settings, node, index), "bystander": bystander_pod(settings, node, index)}


def client_pod(settings: Settings, node: str, index: int, step: int, probe: Probe, attempt: int,
               ip: str) -> Obj:
    """One connection attempt as a pod that runs to completion: exit 0 connected, 1 with the reason."""
    name = f"client-{index}-s{step}-{probe.client}-{probe.target}-{probe.port}-a{attempt}"
    target = f"[{ip}]:{probe.port}" if ":" in ip else f"{ip}:{probe.port}"
    return _pod(settings, name, node, probe.client,
                _container(settings.image, ["connect", target, f"--timeout={CONNECT_TIMEOUT_SECONDS}s"]), "Never")


def _selector(role: str) -> Obj:
    return {"matchLabels": {ROLE_LABEL: role}}


def policies(settings: Settings) -> dict[str, Obj]:
    """The NetworkPolicies the steps put in force, by name."""
    def policy(name: str, spec: Obj) -> Obj:
        return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"name": name, "namespace": settings.namespace,
                             "labels": {CHECK_LABEL: settings.namespace}},
                "spec": spec}

    return {
        "default-deny-ingress": policy("default-deny-ingress", {
            "podSelector": _selector("server"), "policyTypes": ["Ingress"]}),
        "allow-labelled-to-8080": policy("allow-labelled-to-8080", {
            "podSelector": _selector("server"), "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": _selector("labelled")}],
                         "ports": [{"protocol": "TCP", "port": ALLOWED_PORT}]}]}),
        "deny-egress-from-labelled": policy("deny-egress-from-labelled", {
            "podSelector": _selector("labelled"), "policyTypes": ["Egress"]}),
    }
