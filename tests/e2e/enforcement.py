"""A cluster whose policy is really enforced: kwok nodes, one dataplane node, Calico and the policy demo installed
through the `pulumi` CLI (used by the enforcement tests and ``benchmarks/policy.py``)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from calico_component.local import tools
from calico_component.local.controlplane import ControlPlane
from calico_component.local.dataplane import DataplaneNode
from calico_component.local.nodes import add_nodes, cordon, wait_for
from calico_component.local.policydemo import Scenario
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


@contextlib.contextmanager
def enforcement_cluster(tool_paths: Mapping[str, Path], root: Path, config: Mapping[str, str],
                        kwok_nodes: int = 2) -> Iterator[Enforcement]:
    """Control plane, ``kwok_nodes`` cordoned kwok nodes and one dataplane node; the stack program with ``config``
    (plus the test mirror) up and awaited; ``examples/network-policy-demo`` up without policies; the scenario's pods."""
    calico_node = {v: tool_paths[f"calico-node-{v}"] for v in tools.CALICO_RELEASES}
    with ControlPlane(tool_paths["etcd"], tool_paths["kube-apiserver"], tool_paths["kube-controller-manager"],
                      kube_scheduler=tool_paths["kube-scheduler"], kwok=tool_paths["kwok"]) as cp, \
            DataplaneNode(cp, calico_node) as node:
        k8s = api_client(cp)
        if kwok_nodes:
            cordon(k8s, add_nodes(k8s, kwok_nodes))
        env = engine_env(root / "pulumi", tool_paths)
        stack = PulumiCli(tool_paths["pulumi"], copy_stack_program(root / "stack"), env)
        init_program(stack, "enforce", {"manifestMirror": str(mirror_path()), **config}, cp.kubeconfig)
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
