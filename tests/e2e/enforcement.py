"""A cluster whose policy is really enforced: kwok nodes, one dataplane node, Calico and the policy demo installed
through the `pulumi` CLI (used by the enforcement tests and ``benchmarks/policy.py``)."""

from __future__ import annotations

import contextlib
import itertools
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from calico_component.local import tools
from calico_component.local.controlplane import ControlPlane
from calico_component.local.dataplane import DataplaneNode
from calico_component.local.nodes import add_nodes, calico_node_pods, cordon, pod_ready, run_fake_flannel, wait_for
from calico_component.local.policydemo import BACKEND_PORT, ProbeLog, Scenario, Watch
from calico_component.local.program import copy_example, copy_stack_program
from calico_component.local.workspace import PulumiCli, engine_env
from tests.conftest import mirror_path
from tests.e2e.conftest import api_client


@dataclass
class Enforcement:
    """The cluster: the dataplane node, the stack program and the policy demo (two CLI projects), the scenario."""

    cp: ControlPlane
    node: DataplaneNode
    k8s: Any
    stack: PulumiCli
    demo: PulumiCli
    scenario: Scenario
    kubectl: Path
    #: Unix time the stack program's first (awaited) `up` returned.
    up_returned: float

    def policies(self, on: bool) -> float:
        """`pulumi up` of the demo with its policies on or off; returns when `up` returned (unix time)."""
        self.demo("config", "set", "policies", "true" if on else "false")
        self.demo("up", "--yes", "--skip-preview")
        return time.time()

    def calico_restarted(self, previous_uid: str, timeout: float = 120) -> dict[str, Any]:
        """Wait until the node's Calico runs a pod other than ``previous_uid`` and Felix is ready; return its state."""
        def restarted() -> bool:
            state = self.node.calico_state()
            return state.get("uid") not in (None, previous_uid) and bool(state.get("ready"))

        wait_for(restarted, timeout, f"the node's Calico restarted with a new calico-node pod (logs in {self.node.workdir})")
        return self.node.calico_state()


def init_program(cli: PulumiCli, stack: str, config: Mapping[str, str], kubeconfig: str) -> None:
    """`stack init`, one `config set` per key, and the kubeconfig as a secret, as the README does."""
    cli("stack", "init", stack)
    for key, value in config.items():
        cli("config", "set", key, value)
    cli("config", "set", "--secret", "kubeconfig", stdin=kubeconfig)


#: The stack program's settings on the local cluster for each network type (flannel-overlay: no OKE add-on, nodes that
#: already run the fake flannel, the pod CIDR Calico's first pool gets).
NETWORK_CONFIG = {
    "vcn-native": {"networkType": "vcn-native", "nodeOs": "oracle-linux-8"},
    "flannel-overlay": {"networkType": "flannel-overlay", "nodeOs": "oracle-linux-8", "podCidr": "10.244.0.0/16",
                        "allowExistingNodes": "true", "disableFlannelAddon": "false"},
}


def rendered_manifest(version: str, config: Mapping[str, str]) -> str:
    """What a user following Oracle's page applies by hand: the render of the same settings (our CLI)."""
    args = ["--calico-version", version, "--network-type", config["networkType"], "--node-os", config["nodeOs"],
            "--mirror", str(mirror_path())] + (["--pod-cidr", config["podCidr"]] if "podCidr" in config else [])
    return subprocess.run([sys.executable, "-m", "calico_component", "render", *args], capture_output=True, text=True,
                          check=True, timeout=120).stdout


def install_by_hand(kubectl: Path, cp: ControlPlane, k8s: Any, manifest: str, nodes: int) -> None:
    """`kubectl apply --server-side` of the manifest, then calico-node ready on every node (the user's rollout wait)."""
    subprocess.run([str(kubectl), "--kubeconfig", str(cp.kubeconfig_path), "apply", "--server-side", "-f", "-"],
                   input=manifest, text=True, check=True, capture_output=True, timeout=120)
    wait_for(lambda: sum(pod_ready(p) for p in calico_node_pods(k8s)) == nodes, 120,
             f"calico-node ready on {nodes} nodes after kubectl apply")


@contextlib.contextmanager
def enforcement_cluster(tool_paths: Mapping[str, Path], root: Path, config: Mapping[str, str],
                        kwok_nodes: int = 2, by_hand: bool = False) -> Iterator[Enforcement]:
    """Control plane, ``kwok_nodes`` cordoned kwok nodes and one dataplane node (flannel-overlay: all running the fake
    flannel first); Calico installed by the stack program with ``config`` (plus the test mirror), awaited, or with
    ``by_hand`` by kubectl (the stack then only initialised); ``examples/network-policy-demo`` up without policies;
    the scenario's pods."""
    network = config["networkType"]
    calico_node = {v: tool_paths[f"calico-node-{v}"] for v in tools.CALICO_RELEASES}
    calico_cni = {v: tool_paths[f"calico-cni-{v}"] for v in tools.CALICO_RELEASES}
    with ControlPlane(tool_paths["etcd"], tool_paths["kube-apiserver"], tool_paths["kube-controller-manager"],
                      kube_scheduler=tool_paths["kube-scheduler"], kwok=tool_paths["kwok"]) as cp, \
            DataplaneNode(cp, calico_node, calico_cni=calico_cni, pod_network=network) as node:
        k8s = api_client(cp)
        if kwok_nodes:
            cordon(k8s, add_nodes(k8s, kwok_nodes))
        if network == "flannel-overlay":
            run_fake_flannel(k8s, kwok_nodes + 1)
        env = engine_env(root / "pulumi", tool_paths)
        stack = PulumiCli(tool_paths["pulumi"], copy_stack_program(root / "stack"), env)
        init_program(stack, "enforce", {"manifestMirror": str(mirror_path()), **config}, cp.kubeconfig)
        if by_hand:
            install_by_hand(tool_paths["kubectl"], cp, k8s, rendered_manifest(config["calicoVersion"], config),
                            kwok_nodes + 1)
        else:
            stack("up", "--yes", "--skip-preview")
        up_returned = time.time()
        demo = PulumiCli(tool_paths["pulumi"], copy_example("network-policy-demo", root / "demo"), env)
        init_program(demo, "enforce", {"installCalico": "false", "policies": "false"}, cp.kubeconfig)
        demo("up", "--yes", "--skip-preview")
        scenario, other = Scenario.start(node, k8s)
        try:
            yield Enforcement(cp, node, k8s, stack, demo, scenario, tool_paths["kubectl"], up_returned)
        finally:
            other.terminate()


#: The longest pause allowed between two probe attempts during a watched change (attempts every 0.05 s; the bound
#: leaves room for a loaded 2-core machine, not for a restart of the probes).
MAX_PROBE_GAP = 2.0


@dataclass
class WatchedChange:
    """What the probes saw while a change was applied: both clients' attempts, and when the change ran."""

    logs: dict[str, ProbeLog]
    started: float
    ended: float

    def assert_denied_client_never_connected(self) -> None:
        """Every attempt of the denied client timed out (a refusal, an unreachable or an error is not a policy drop,
        and a connection is a breach); the allowed client connected; neither paused longer than MAX_PROBE_GAP."""
        denied, allowed = self.logs["client"], self.logs["frontend"]
        for log in (denied, allowed):
            assert log.covers(self.started, self.ended), f"{log.source}'s probes did not span the change"
            spacing = [b[0] - a[0] for a, b in itertools.pairwise(log.attempts)]
            assert statistics.median(spacing) <= 0.1, f"{log.source} probed every {statistics.median(spacing):.2f}s"
            assert max(spacing) <= MAX_PROBE_GAP, f"{log.source} paused {max(spacing):.2f}s between two attempts"
        others = {o: denied.count(o) for o in sorted({o for _, o in denied.attempts}) if o != "timeout"}
        assert others == {}, f"the denied client's attempts were not all timeouts during the change: {others}"
        after = [t for t, outcome in allowed.attempts if outcome == "ok" and t >= self.ended]
        assert after, "the allowed client did not connect after the change: the probes prove nothing"
        assert allowed.longest_gap() <= MAX_PROBE_GAP, f"the allowed client lost {allowed.longest_gap():.2f}s"


def watched(e: Enforcement, directory: Path, *commands: tuple[str, ...]) -> WatchedChange:
    """The client the policies deny connects without them (the positive control); then, with the policies in force and
    both clients probing, run ``commands`` through the stack's CLI, and wait until calico-node's rollout is complete
    before the watch ends."""
    e.policies(False)
    e.scenario.until("client", BACKEND_PORT, "ok", 20)
    e.policies(True)
    e.scenario.until("client", BACKEND_PORT, "timeout", 20)
    e.scenario.until("frontend", BACKEND_PORT, "ok", 20)
    with Watch(e.scenario, directory) as watch:
        started = time.time()
        for command in commands:
            e.stack(*command)
        wait_for(lambda: rollout_complete(e.k8s), 120, "calico-node's rollout to complete after the change")
        ended = time.time()
    return WatchedChange(watch.logs(), started, ended)


def upgrade_watched(e: Enforcement, target: str, directory: Path) -> WatchedChange:
    """`pulumi config set calicoVersion <target>` and an awaited `pulumi up` under probes; the node's Calico must run
    ``target`` afterwards, restarted with its new pod."""
    before = e.node.calico_state()
    change = watched(e, directory, ("config", "set", "calicoVersion", target), ("up", "--yes", "--skip-preview"))
    after = e.node.calico_state()
    assert after["release"] == f"v{target}" and after["ready"] and after["uid"] != before["uid"], after
    return change


def verify(e: Enforcement, *nodes: str, pod_timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`python -m calico_component verify` against the cluster, on ``nodes``."""
    flags = [arg for node in nodes for arg in ("--node", node)]
    return subprocess.run([sys.executable, "-m", "calico_component", "verify", "--kubeconfig", str(e.cp.kubeconfig_path),
                           *flags, "--pod-timeout", str(pod_timeout)],
                          capture_output=True, text=True, timeout=600, cwd=Path(__file__).resolve().parents[2])


def policy_check_urn(e: Enforcement) -> str:
    """The URN of the component's policy check in the stack's state (what `pulumi up --replace` takes)."""
    import json

    resources = json.loads(e.stack("stack", "export").stdout)["deployment"]["resources"]
    return next(str(r["urn"]) for r in resources if str(r["urn"]).endswith("::calico-policy-check"))


def check_leftovers(e: Enforcement) -> list[str]:
    """Namespaces, pods and NetworkPolicies the policy check left anywhere in the cluster."""
    from kubernetes import client

    from calico_component.policy.plan import CHECK_LABEL

    core: Any = client.CoreV1Api(e.k8s)
    net: Any = client.NetworkingV1Api(e.k8s)
    found = [f"namespace/{n.metadata.name}" for n in core.list_namespace(label_selector=CHECK_LABEL).items]
    found += [f"pod/{p.metadata.name}" for p in core.list_pod_for_all_namespaces(label_selector=CHECK_LABEL).items]
    found += [f"networkpolicy/{p.metadata.name}"
              for p in net.list_network_policy_for_all_namespaces(label_selector=CHECK_LABEL).items]
    return found


def rollout_complete(k8s: Any) -> bool:
    """Every calico-node pod runs the DaemonSet's current template and is ready."""
    from kubernetes import client

    ds: Any = client.AppsV1Api(k8s).read_namespaced_daemon_set("calico-node", "kube-system")
    status = ds.status
    return bool(status.observed_generation == ds.metadata.generation
                and status.updated_number_scheduled == status.desired_number_scheduled == status.number_ready)
