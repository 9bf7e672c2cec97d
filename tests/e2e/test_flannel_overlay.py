"""flannel-overlay on a real engine and API server: kube-flannel-ds removed, calico.yaml applied, re-runs are no-ops."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from calico_component import Calico, CalicoArgs
from calico_component.local.controlplane import ControlPlane
from calico_component.steps.types import DAEMONSET_ABSENT
from tests.conftest import upstream_objects
from tests.e2e.cluster import calico_node, env_of, exists, flannel_daemonset, flannel_present
from tests.e2e.conftest import Run, StackFactory, mirror

DYNAMIC = DAEMONSET_ABSENT.token


def program(kubeconfig: str) -> Any:
    def run() -> None:
        Calico("calico", CalicoArgs(calico_version="3.32.0", network_type="flannel-overlay", node_os="oracle-linux-8",
                                    kubeconfig=kubeconfig, disable_flannel_addon=False, manifest_mirror=mirror(),
                                    skip_await=True))
    return run


def test_flannel_replaced_by_calico(control_plane: ControlPlane, k8s: Any, make_stack: StackFactory) -> None:
    """up deletes kube-flannel-ds before applying calico.yaml; a second run is a no-op; refresh sees flannel return."""
    apps = client.AppsV1Api(k8s)
    apps.create_namespaced_daemon_set("kube-system", flannel_daemonset())
    stack = make_stack("calico-e2e-flannel", program(control_plane.kubeconfig))

    run = Run()
    stack.preview(on_event=run.on_event)
    creates = run.of("create")
    assert (DYNAMIC, "calico-flannel-daemonset") in creates
    assert len([t for t, _ in creates if t.startswith("kubernetes:")]) == len(upstream_objects("3.32.0", "calico.yaml"))
    assert flannel_present(k8s), "preview must not delete flannel"

    assert stack.up(on_output=lambda _: None).summary.result == "succeeded"
    assert not flannel_present(k8s)
    ds = calico_node(k8s)
    env = env_of(ds)
    assert env["FELIX_IPTABLESBACKEND"] == "NFT" and env["CALICO_IPV4POOL_IPIP"] == "Always"
    # Oracle's flannel-overlay edits keep calico-node's init containers as upstream ships them (3.31+: ebpf-bootstrap).
    upstream = next(o for o in upstream_objects("3.32.0", "calico.yaml")
                    if o["kind"] == "DaemonSet" and o["metadata"]["name"] == "calico-node")
    expected = [c["name"] for c in upstream["spec"]["template"]["spec"]["initContainers"]]
    assert [c.name for c in ds.spec.template.spec.init_containers] == expected and "ebpf-bootstrap" in expected

    run = Run()
    stack.preview(on_event=run.on_event)
    assert run.changed() == [], f"second run is not a no-op: {run.changed()}"
    assert stack.up(on_output=lambda _: None).summary.result == "succeeded"

    # flannel comes back (e.g. the add-on was re-enabled): refresh notices, up removes it again.
    apps.create_namespaced_daemon_set("kube-system", flannel_daemonset())
    run = Run()
    stack.preview(on_event=run.on_event, refresh=True)
    assert ("update", DYNAMIC, "calico-flannel-daemonset") in run.changed()
    assert stack.up(on_output=lambda _: None, refresh=True).summary.result == "succeeded"
    assert not flannel_present(k8s)

    # destroy leaves flannel gone (never re-creates it) and removes Calico's non-CRD objects.
    assert stack.destroy(on_output=lambda _: None).summary.result == "succeeded"
    assert not flannel_present(k8s)
    assert not exists(lambda: calico_node(k8s))
