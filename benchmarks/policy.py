"""Policy programming latency on a node whose dataplane is real: how long until a NetworkPolicy change is enforced.

One control plane and one dataplane node (``calico_component.local.dataplane``): Calico 3.32.0
vcn-native (Oracle Linux 8, NFT) installed by the stack program through the `pulumi` CLI (awaited),
``examples/network-policy-demo``'s backend, and a client pod probing backend:8080 without pause
(a TCP connect every ``--interval`` seconds, each line of its log the attempt's start and outcome).
For each size (pods on the node, extra NetworkPolicies in the namespace):

- from creation: a default-deny NetworkPolicy created through the API; the latency is the start of
  the first probe that began after the create call returned and timed out; then its deletion, and
  the first probe after it that connects. The first cycle after pods or policies were added is shown
  apart: Felix is still programming them, and the new policy waits behind them;
- from `pulumi up`: the demo program's ``policies`` switched on and off with `pulumi up`; the latency
  is from `up` returning to the first probe begun after it that sees the change (0 when it was in force
  already, less than a probe interval).

The resolution is the probe interval. Filler pods (no ports) and policies selecting them grow the
rule set Felix keeps. Then, for each network type, enforcement through in-place version changes
(3.31.5 -> 3.32.0 -> 3.31.5 ..., ``--upgrades`` of them, each an awaited `pulumi up`) with the policies
in force and both clients probing every 50 ms: how often the denied client connected (the promise is
never), the allowed client's longest gap, and how long the node ran without a ready Felix.
Run: python benchmarks/policy.py [--pods 10,100,500] [--policies 0,50,200] [--repeat 5] [--interval 0.02]
[--upgrades 2].
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kubernetes import client

from calico_component.local import tools
from calico_component.local.nodes import wait_for
from calico_component.local.policydemo import BACKEND_PORT, NAMESPACE, felix_outages
from tests.e2e.enforcement import NETWORK_CONFIG, Enforcement, enforcement_cluster, upgrade_watched

DENY: dict[str, Any] = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                        "metadata": {"name": "bench-default-deny", "namespace": NAMESPACE},
                        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}


@dataclass
class Probe:
    """A client -> backend:8080 probe running in the client pod; its log is read back by time."""

    log: Path
    proc: subprocess.Popen[bytes]

    def first_after(self, since: float, outcome: str, timeout: float = 30) -> float:
        """Seconds from ``since`` to the start of the first attempt begun after it with ``outcome``."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            for line in self.log.read_text().splitlines():
                stamp, result = line.split()
                if float(stamp) >= since and result == outcome:
                    return float(stamp) - since
            time.sleep(0.05)
        raise RuntimeError(f"no {outcome} probe within {timeout}s after {since}")


@dataclass
class Point:
    pods: int
    policies: int
    #: Deny from create, every cycle; the first ran right after the fillers and extra policies changed.
    created: list[float] = field(default_factory=list)
    deleted: list[float] = field(default_factory=list)
    up_on: list[float] = field(default_factory=list)
    up_off: list[float] = field(default_factory=list)

    @property
    def first(self) -> float:
        """Deny from create right after the size changed (queued behind Felix programming the new pods/policies)."""
        return self.created[0]

    @property
    def settled(self) -> list[float]:
        """Deny from create in the cycles after the first."""
        return self.created[1:]


def start_probe(e: Enforcement, root: Path, interval: float) -> Probe:
    log = root / "probe.log"
    log.touch()
    cmd = e.node.probe_command(NAMESPACE, "client", "watch", e.scenario.backend_ip, str(BACKEND_PORT), "--out", str(log),
                               "--interval", str(interval), "--timeout", "0.25", "--limit", "3600")
    return Probe(log, subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))


def scale_fillers(k8s: Any, count: int) -> None:
    """A Deployment of ``count`` pods without ports on the node (more endpoints for Felix), all running."""
    apps = client.AppsV1Api(k8s)
    labels = {"app": "filler"}
    spec = client.V1DeploymentSpec(replicas=count, selector=client.V1LabelSelector(match_labels=labels),
                                   template=client.V1PodTemplateSpec(metadata=client.V1ObjectMeta(labels=labels),
                                   spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="filler:1")])))
    try:
        apps.replace_namespaced_deployment("filler", NAMESPACE, client.V1Deployment(
            metadata=client.V1ObjectMeta(name="filler"), spec=spec))
    except client.exceptions.ApiException:
        apps.create_namespaced_deployment(NAMESPACE, client.V1Deployment(metadata=client.V1ObjectMeta(name="filler"),
                                                                          spec=spec))

    def ready() -> bool:
        d: Any = apps.read_namespaced_deployment("filler", NAMESPACE)
        return (d.status.ready_replicas or 0) == count and (d.status.replicas or 0) == count

    def settled() -> bool:  # the pods of a larger size are gone too (their network namespaces torn down)
        pods: Any = client.CoreV1Api(k8s).list_namespaced_pod(NAMESPACE, label_selector="app=filler")
        return len(pods.items) == count
    wait_for(ready, 60 + count * 0.5, f"{count} filler pods running")
    wait_for(settled, 60 + count * 0.5, f"only {count} filler pods left")


def set_extra_policies(k8s: Any, count: int, existing: int) -> None:
    """``count`` NetworkPolicies selecting the fillers, each opening one port to one label."""
    api: Any = client.NetworkingV1Api(k8s)
    for i in range(existing, count):
        api.create_namespaced_network_policy(NAMESPACE, {
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": f"extra-{i}"},
            "spec": {"podSelector": {"matchLabels": {"app": "filler"}}, "policyTypes": ["Ingress"],
                     "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": f"peer-{i}"}}}],
                                  "ports": [{"protocol": "TCP", "port": 10000 + i}]}]}})
    for i in range(count, existing):
        api.delete_namespaced_network_policy(f"extra-{i}", NAMESPACE)


def measure(e: Enforcement, probe: Probe, point: Point, repeat: int) -> None:
    api: Any = client.NetworkingV1Api(e.k8s)
    for _ in range(repeat + 1):
        api.create_namespaced_network_policy(NAMESPACE, DENY)
        created = time.time()
        point.created.append(probe.first_after(created, "timeout"))
        time.sleep(0.5)
        api.delete_namespaced_network_policy(DENY["metadata"]["name"], NAMESPACE)
        deleted = time.time()
        point.deleted.append(probe.first_after(deleted, "ok"))
        time.sleep(0.5)
    for _ in range(max(1, repeat // 2)):
        point.up_on.append(probe.first_after(e.policies(True), "timeout"))
        point.up_off.append(probe.first_after(e.policies(False), "ok"))


@dataclass
class Upgrade:
    network: str
    change: str
    denied_ok: int
    probes: int
    gap: float
    outage: float


def measure_upgrades(paths: dict[str, Path], network: str, count: int) -> list[Upgrade]:
    """``count`` in-place version changes under probes on a fresh cluster of ``network``."""
    config = {"calicoVersion": "3.31.5", **NETWORK_CONFIG[network]}
    found = []
    with tempfile.TemporaryDirectory(prefix="calico-oke-bench-upgrade-") as tmp, \
            enforcement_cluster(paths, Path(tmp), config, kwok_nodes=0) as e:
        versions = ["3.32.0", "3.31.5"]
        for i in range(count):
            target = versions[i % 2]
            seen = len(e.node.events())
            change = upgrade_watched(e, target, Path(tmp) / f"probes-{i}")
            outages = felix_outages(e.node.events()[seen:])
            denied, allowed = change.logs["client"], change.logs["frontend"]
            found.append(Upgrade(network, f"-> {target}", denied.count("ok"), len(denied.attempts),
                                 allowed.longest_gap(), max(outages, default=0.0)))
    return found


def sizes(args: argparse.Namespace) -> Iterator[tuple[int, int]]:
    pods = [int(x) for x in args.pods.split(",")]
    policies = [int(x) for x in args.policies.split(",")]
    yield from ((n, 0) for n in pods)
    yield from ((pods[len(pods) // 2], p) for p in policies if p)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", default="10,100,500")
    parser.add_argument("--policies", default="0,50,200")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--interval", type=float, default=0.02)
    parser.add_argument("--upgrades", type=int, default=2, help="in-place version changes per network type (0: none)")
    args = parser.parse_args()
    paths = tools.ensure((*tools.DEMO_TOOLS, "kubectl", *tools.CALICO_TOOLS))
    config = {"calicoVersion": "3.32.0", **NETWORK_CONFIG["vcn-native"]}
    points: list[Point] = []
    with tempfile.TemporaryDirectory(prefix="calico-oke-bench-policy-") as tmp, \
            enforcement_cluster(paths, Path(tmp), config, kwok_nodes=0) as e:
        probe = start_probe(e, Path(tmp), args.interval)
        try:
            extra = 0
            for pods, policies in sizes(args):
                scale_fillers(e.k8s, pods)
                set_extra_policies(e.k8s, policies, extra)
                extra = policies
                point = Point(pods, policies + 2)
                measure(e, probe, point, args.repeat)
                points.append(point)
                print(f"measured {pods} pods, {policies} extra policies: deny from create {point.first:.2f} first, "
                      f"then {' '.join(f'{x:.2f}' for x in point.settled)}", file=sys.stderr, flush=True)
        finally:
            probe.proc.terminate()
    report(points, args)
    upgrades = [u for network in NETWORK_CONFIG for u in measure_upgrades(paths, network, args.upgrades)]
    report_upgrades(upgrades)
    return 0


def report_upgrades(upgrades: list[Upgrade]) -> None:
    if not upgrades:
        return
    print("\nenforcement through in-place version changes (awaited `pulumi up`, probes every 50 ms)")
    print(f"{'network':17}{'change':>10}{'denied ok':>11}{'probes':>8}{'allowed gap':>13}{'Felix not ready':>17}")
    for u in upgrades:
        print(f"{u.network:17}{u.change:>10}{u.denied_ok:>11}{u.probes:>8}{u.gap:>12.2f}s{u.outage:>16.1f}s")


def _stats(values: list[float]) -> str:
    return f"{statistics.median(values):7.2f} {max(values):6.2f}"


def report(points: list[Point], args: argparse.Namespace) -> None:
    print(f"Calico 3.32.0 vcn-native, Felix on a dataplane node; probe every {args.interval}s; seconds, median and max "
          f"({args.repeat} API cycles after a first one, {max(1, args.repeat // 2)} `pulumi up` cycles per row)")
    print(f"{'pods':>5} {'policies':>8}  {'first deny':>10}  {'deny from create':>16}  {'allow from delete':>17}  "
          f"{'deny from up':>14}  {'allow from up':>14}")
    for p in points:
        print(f"{p.pods + 3:>5} {p.policies:>8}  {p.first:>10.2f}  {_stats(p.settled):>16}  {_stats(p.deleted):>17}  "
              f"{_stats(p.up_on):>14}  {_stats(p.up_off):>14}")
    print("pods: on the node (fillers + backend + 2 clients); policies: in the namespace besides the measured one;\n"
          "first deny: from create, right after the row's pods and policies were added (Felix still programming them)")


if __name__ == "__main__":
    sys.exit(main())
