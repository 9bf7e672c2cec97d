"""Bad input through the engine: clear errors at preview time and nothing created in the cluster."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from pulumi import automation as auto

from calico_component import Calico, CalicoArgs
from calico_component.local.controlplane import ControlPlane
from tests.e2e.cluster import calico_node, exists, flannel_daemonset, flannel_present
from tests.e2e.conftest import StackFactory, mirror


def nothing_created(k8s: Any, stack: auto.Stack) -> None:
    assert not exists(lambda: calico_node(k8s))
    assert client.ApiextensionsV1Api(k8s).list_custom_resource_definition().items == []
    resources = (stack.export_stack().deployment or {}).get("resources") or []
    assert [r for r in resources if r["type"].startswith("kubernetes:")] == []


def test_unsupported_version_fails_preview(control_plane: ControlPlane, k8s: Any, make_stack: StackFactory) -> None:
    """An unsupported Calico version fails preview with the component's message and creates nothing."""
    def run() -> None:
        Calico("calico", CalicoArgs(calico_version="3.99.0", network_type="vcn-native", node_os="oracle-linux-8",
                                    kubeconfig=control_plane.kubeconfig, manifest_mirror=mirror()))

    stack = make_stack("calico-e2e-badversion", run)
    with pytest.raises(auto.errors.CommandError) as info:
        stack.preview()
    assert "Calico 3.99.0 is not in Oracle's tested table" in str(info.value)
    with pytest.raises(auto.errors.CommandError):
        stack.up(on_output=lambda _: None)
    nothing_created(k8s, stack)


def test_digest_mismatch_fails_preview(control_plane: ControlPlane, k8s: Any, make_stack: StackFactory,
                                       tmp_path: Path) -> None:
    """A mirror file whose digest differs from the pin fails preview naming both digests, and creates nothing."""
    bad = tmp_path / "mirror" / "v3.32.0"
    bad.mkdir(parents=True)
    good = Path(mirror()) / "v3.32.0" / "calico-policy-only.yaml"
    shutil.copy(good, bad / "calico-policy-only.yaml")
    with (bad / "calico-policy-only.yaml").open("ab") as fh:
        fh.write(b"\n# tampered\n")

    def run() -> None:
        Calico("calico", CalicoArgs(calico_version="3.32.0", network_type="vcn-native", node_os="oracle-linux-8",
                                    kubeconfig=control_plane.kubeconfig, manifest_mirror=str(tmp_path / "mirror")))

    stack = make_stack("calico-e2e-baddigest", run)
    with pytest.raises(auto.errors.CommandError) as info:
        stack.up(on_output=lambda _: None)
    message = str(info.value)
    pinned = hashlib.sha256(good.read_bytes()).hexdigest()
    got = hashlib.sha256((bad / "calico-policy-only.yaml").read_bytes()).hexdigest()
    assert "SHA-256 mismatch" in message and f"expected {pinned}, got {got}" in message
    nothing_created(k8s, stack)


def test_existing_nodes_refused_at_preview(control_plane: ControlPlane, k8s: Any, make_stack: StackFactory) -> None:
    """Replacing flannel on a cluster whose nodes run it fails at preview, before flannel or anything is touched."""
    core = client.CoreV1Api(k8s)
    client.AppsV1Api(k8s).create_namespaced_daemon_set("kube-system", flannel_daemonset())
    core.create_node(client.V1Node(metadata=client.V1ObjectMeta(name="worker-1")))

    def run() -> None:
        Calico("calico", CalicoArgs(calico_version="3.32.0", network_type="flannel-overlay", node_os="oracle-linux-8",
                                    kubeconfig=control_plane.kubeconfig, disable_flannel_addon=False,
                                    manifest_mirror=mirror(), skip_await=True))

    stack = make_stack("calico-e2e-nodes", run)
    try:
        with pytest.raises(auto.errors.CommandError) as info:
            stack.preview()
        assert "already has 1 node(s) running flannel" in str(info.value)
        assert flannel_present(k8s)
        nothing_created(k8s, stack)
    finally:
        core.delete_node("worker-1")
        client.AppsV1Api(k8s).delete_namespaced_daemon_set("kube-flannel-ds", "kube-system")
