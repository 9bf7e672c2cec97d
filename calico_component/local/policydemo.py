"""The NetworkPolicy scenario on a dataplane node: ``examples/network-policy-demo``'s backend, two clients, probes.

Shared by the e2e tests, ``demo --enforce`` and the policy benchmark. The backend comes from the
example (a Deployment whose stand-in container listens on 8080); the clients are two pods on the
dataplane node, ``client`` (no labels) and ``frontend`` (``role=frontend``); a second listener on
``OTHER_PORT`` inside the backend's pod is "another port" the allow rule does not open.
"""

from __future__ import annotations

import itertools
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client

from .dataplane import DataplaneNode
from .nodes import wait_for

NAMESPACE = "policy-demo"
BACKEND_PORT = 8080
OTHER_PORT = 9090
#: Client pods and their labels: the allow rule admits ``role=frontend`` only.
CLIENTS: Mapping[str, Mapping[str, str]] = {"client": {}, "frontend": {"role": "frontend"}}


def add_client(k8s: Any, node: str, name: str, labels: Mapping[str, str], namespace: str = NAMESPACE) -> None:
    """A pod bound to ``node`` (no ports: it only makes connections)."""
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, namespace=namespace, labels=dict(labels)),
        spec=client.V1PodSpec(node_name=node, containers=[client.V1Container(
            name="main", image="docker.io/library/busybox:1.36", command=["sleep", "infinity"])]))
    client.CoreV1Api(k8s).create_namespaced_pod(namespace, pod)


def pod_ip(k8s: Any, namespace: str, name: str, timeout: float = 60) -> str:
    """The pod's address once its node reports it Running."""
    core = client.CoreV1Api(k8s)
    found: dict[str, str] = {}

    def running() -> bool:
        pod: Any = core.read_namespaced_pod(name, namespace)
        if pod.status.phase == "Running" and pod.status.pod_ip:
            found["ip"] = pod.status.pod_ip
        return "ip" in found

    wait_for(running, timeout, f"pod {namespace}/{name} running with an address")
    return found["ip"]


def backend_pod(k8s: Any, namespace: str = NAMESPACE, timeout: float = 60) -> tuple[str, str]:
    """(name, address) of the example's backend pod."""
    core = client.CoreV1Api(k8s)
    names: list[str] = []

    def listed() -> bool:
        pods: Any = core.list_namespaced_pod(namespace, label_selector="app=backend")
        names[:] = [p.metadata.name for p in pods.items if not p.metadata.deletion_timestamp]
        return len(names) == 1

    wait_for(listed, timeout, f"one backend pod in {namespace}")
    return names[0], pod_ip(k8s, namespace, names[0], timeout)


@dataclass
class Scenario:
    """The clients and the backend on one dataplane node, and the probes between them."""

    node: DataplaneNode
    k8s: Any
    backend: str
    backend_ip: str
    namespace: str = NAMESPACE

    @classmethod
    def start(cls, node: DataplaneNode, k8s: Any, namespace: str = NAMESPACE) -> tuple[Scenario, subprocess.Popen[bytes]]:
        """Clients added, the backend found, and a listener on OTHER_PORT in the backend's pod (returned: stop it)."""
        for name, labels in CLIENTS.items():
            add_client(k8s, node.name, name, labels, namespace)
        backend, ip = backend_pod(k8s, namespace)
        scenario = cls(node, k8s, backend, ip, namespace)
        for name in CLIENTS:
            pod_ip(k8s, namespace, name)
        other = subprocess.Popen(node.probe_command(namespace, backend, "serve", str(OTHER_PORT), "--name", "other"),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        scenario.until("frontend", OTHER_PORT, "ok", 20)
        return scenario, other

    def connect(self, source: str, port: int, timeout: float = 0.5) -> str:
        """One attempt from client pod ``source`` to the backend."""
        return self.node.connect(self.namespace, source, self.backend_ip, port, timeout)

    def until(self, source: str, port: int, expected: str, timeout: float) -> float:
        """Seconds from now to the start of the first attempt from ``source`` to the backend's ``port`` that gives
        ``expected`` (fails after ``timeout``)."""
        started = time.monotonic()
        seen = ""
        while time.monotonic() - started < timeout:
            attempt = time.monotonic()
            seen = self.connect(source, port)
            if seen == expected:
                return attempt - started
            time.sleep(0.05)
        raise AssertionError(f"{source} -> backend:{port} still {seen!r} after {timeout:g}s (expected {expected!r}); "
                             f"node logs in {self.node.workdir}")

    def matrix(self) -> dict[str, str]:
        """What each client sees now on both ports: ``{"client:8080": "timeout", ...}``."""
        return {f"{source}:{port}": self.connect(source, port) for source in CLIENTS for port in (BACKEND_PORT, OTHER_PORT)}


#: What the demo's policies let through: only frontend -> backend:8080.
ENFORCED = {"client:8080": "timeout", "client:9090": "timeout", "frontend:8080": "ok", "frontend:9090": "timeout"}
#: Without policies everything connects.
OPEN = {"client:8080": "ok", "client:9090": "ok", "frontend:8080": "ok", "frontend:9090": "ok"}


@dataclass
class ProbeLog:
    """Every attempt one client made: (unix time the attempt began, outcome)."""

    source: str
    attempts: list[tuple[float, str]]

    @classmethod
    def read(cls, source: str, path: Path) -> ProbeLog:
        attempts = []
        for line in path.read_text().splitlines():
            stamp, outcome = line.split()
            attempts.append((float(stamp), outcome))
        return cls(source, attempts)

    def count(self, outcome: str) -> int:
        return sum(1 for _, seen in self.attempts if seen == outcome)

    def longest_gap(self) -> float:
        """The longest time between two attempts that connected (0 with fewer than two)."""
        times = [t for t, seen in self.attempts if seen == "ok"]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)

    def covers(self, start: float, end: float) -> bool:
        """Whether attempts were made from before ``start`` until after ``end``."""
        return bool(self.attempts) and self.attempts[0][0] <= start and self.attempts[-1][0] >= end


@dataclass
class Watch:
    """A denied client and an allowed client probing the backend's port without pause, during something."""

    scenario: Scenario
    directory: Path
    interval: float = 0.05
    timeout: float = 0.09
    procs: dict[str, subprocess.Popen[bytes]] | None = None

    def __enter__(self) -> Watch:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.procs = {}
        for source in CLIENTS:
            log = self.directory / f"{source}.log"
            log.write_text("")
            cmd = self.scenario.node.probe_command(
                self.scenario.namespace, source, "watch", self.scenario.backend_ip, str(BACKEND_PORT), "--out", str(log),
                "--interval", str(self.interval), "--timeout", str(self.timeout), "--limit", "1800")
            self.procs[source] = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)  # a second of attempts before whatever is watched
        return self

    def __exit__(self, *_: object) -> None:
        time.sleep(1)  # and a second after it
        for proc in (self.procs or {}).values():
            proc.terminate()
            proc.wait(timeout=10)

    def logs(self) -> dict[str, ProbeLog]:
        return {source: ProbeLog.read(source, self.directory / f"{source}.log") for source in CLIENTS}


def felix_outages(events: list[tuple[float, str, dict[str, str]]]) -> list[float]:
    """Seconds the node ran without a ready Felix, per outage: from a Calico stop or Felix turning not ready, to the
    next ``felix-ready`` (from the node's event log)."""
    outages, down_since = [], None
    for stamp, what, _ in events:
        if what in ("calico-stopped", "felix-not-ready") and down_since is None:
            down_since = stamp
        elif what == "felix-ready" and down_since is not None:
            outages.append(stamp - down_since)
            down_since = None
    return outages


def enforcement_line(logs: dict[str, ProbeLog]) -> str:
    """``enforcement during the upgrade: denied client connected 0 of 812 probes; allowed client's longest gap 0.4s``"""
    denied, allowed = logs["client"], logs["frontend"]
    return (f"enforcement during the upgrade: denied client connected {denied.count('ok')} of {len(denied.attempts)} "
            f"probes; allowed client's longest gap {allowed.longest_gap():.1f}s")
