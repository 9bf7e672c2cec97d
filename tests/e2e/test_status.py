"""`status` on a live control plane with fake nodes: healthy and marked, a node not ready, no calico-oke mark."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from calico_component.cluster.ownership import OWNER_ANNOTATION
from calico_component.local.controlplane import ControlPlane
from calico_component.local.nodes import calico_node_pods, wait_for
from calico_component.manifest.fetch import FetchOptions
from calico_component.manifest.render import render
from tests.conftest import REPO, mirror_path, upstream_image
from tests.e2e.cluster import THREE_NODES, calico_node

VERSION = "3.32.0"
STACK = "organization/calico-oke/e2e-status"


@pytest.fixture(scope="module")
def hand_installed(node_k8s: Any) -> Iterator[None]:
    """calico-node of 3.32.0 vcn-native, as render makes it, created once for the module with the Kubernetes client
    (so without calico-oke's mark); each test brings its 3 nodes (three_nodes)."""
    objects = render(VERSION, "vcn-native", "oracle-linux-8",
                     fetch_options=FetchOptions(mirror=str(mirror_path()), offline=True, use_cache=False)).objects
    ds: Any = next(o for o in objects if o["kind"] == "DaemonSet" and o["metadata"]["name"] == "calico-node")
    apps = client.AppsV1Api(node_k8s)
    apps.create_namespaced_daemon_set("kube-system", ds)
    yield
    apps.delete_namespaced_daemon_set("calico-node", "kube-system")


def rolled_out(k8s: Any, ready: int) -> bool:
    status = calico_node(k8s).status
    return bool(status.desired_number_scheduled == 3 and status.updated_number_scheduled == 3
                and (status.number_ready or 0) == ready and (status.number_available or 0) == ready)


def mark(k8s: Any, stack: str | None) -> None:
    """Set (or with None remove) the calico-oke mark on calico-node, as a stack's `up` (or a hand install) leaves it."""
    client.AppsV1Api(k8s).patch_namespaced_daemon_set(
        "calico-node", "kube-system", {"metadata": {"annotations": {OWNER_ANNOTATION: stack}}})


def status(cp: ControlPlane) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "calico_component", "status", "--kubeconfig", str(cp.kubeconfig_path)],
                          capture_output=True, text=True, cwd=REPO, timeout=60)


def test_healthy_calico_marked_by_a_stack(node_cluster: ControlPlane, node_k8s: Any, hand_installed: None,
                                          three_nodes: list[str]) -> None:
    """Ready on 3 of 3 nodes, rolled out, marked: exit 0 naming the stack, the release and the cluster's Kubernetes version."""
    mark(node_k8s, STACK)
    wait_for(lambda: rolled_out(node_k8s, 3), 60, "calico-node ready on 3 nodes")
    proc = status(node_cluster)
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stdout + proc.stderr
    server: Any = client.VersionApi(node_k8s).get_code()
    lines = proc.stdout.splitlines()
    assert f"Kubernetes: {server.git_version}" in lines
    assert f"Calico: {VERSION} (image {upstream_image(VERSION)})" in lines
    assert f"Installed by: calico-oke, managed by stack {STACK} ({OWNER_ANNOTATION})" in lines
    assert "Ready: calico-node ready on 3 of 3 nodes" in lines
    assert "  FELIX_INTERFACEPREFIX: oci" in lines and "  FELIX_IPTABLESBACKEND: NFT" in lines
    assert "Rollout: 3 desired, 3 updated, 3 ready, 3 available: complete" in lines
    assert lines[-1].startswith("status: healthy")


def test_a_node_whose_calico_node_is_not_ready_fails_naming_it(node_cluster: ControlPlane, node_k8s: Any,
                                                                hand_installed: None, three_nodes: list[str]) -> None:
    """worker-1's calico-node not ready: exit 1, 2 of 3 nodes, a last `error:` line naming worker-1 and its pod only."""
    wait_for(lambda: rolled_out(node_k8s, 3), 60, "calico-node ready on 3 nodes")
    pod = next(p for p in calico_node_pods(node_k8s) if p.spec.node_name == THREE_NODES[1])
    client.CoreV1Api(node_k8s).patch_namespaced_pod_status(pod.metadata.name, "kube-system", {"status": {
        "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady"}]}})
    wait_for(lambda: rolled_out(node_k8s, 2), 30, "the DaemonSet counting 2 ready pods")
    proc = status(node_cluster)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Ready: calico-node ready on 2 of 3 nodes" in proc.stdout
    error = proc.stderr.splitlines()
    assert len(error) == 1 and error[0].startswith(f"error: calico-node is not ready on 1 of 3 nodes: {THREE_NODES[1]} "
                                                   f"(pod {pod.metadata.name}")
    assert THREE_NODES[0] not in error[0] and THREE_NODES[2] not in error[0]


def test_calico_without_the_mark_is_reported_as_installed_by_hand(node_cluster: ControlPlane, node_k8s: Any,
                                                                  hand_installed: None, three_nodes: list[str]) -> None:
    """The same Calico without calico-oke's mark: still healthy (exit 0), installed by hand or by another tool."""
    mark(node_k8s, None)
    wait_for(lambda: rolled_out(node_k8s, 3), 60, "calico-node ready on 3 nodes")
    proc = status(node_cluster)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Installed by: installed by hand or by another tool (no calico-oke mark)" in proc.stdout.splitlines()
    assert "managed by stack" not in proc.stdout
