"""The default, awaited path on fake nodes (kwok): install, upgrade, failing rollout, node guard, scale, Typha, stack program."""

from __future__ import annotations

import runpy
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from pulumi import automation as auto

from calico_component import Calico, CalicoArgs
from calico_component.local.controlplane import ControlPlane
from calico_component.local.nodes import (
    NEVER_READY_REGISTRY,
    add_nodes,
    calico_node_pods,
    delete_nodes,
    pod_ready,
    run_fake_flannel,
)
from tests.conftest import REPO, upstream_image
from tests.e2e.cluster import calico_node, delete_crds, exists, flannel, flannel_present
from tests.e2e.conftest import Run, StackFactory, mirror
from tests.e2e.engine import plaintext_leaks


@pytest.fixture(autouse=True)
def fresh_cluster(node_k8s: Any) -> Iterator[None]:
    """Each test brings its own nodes; none of them, nor a Calico CRD, outlives it."""
    yield
    delete_nodes(node_k8s)
    delete_crds(node_k8s)


def program(kubeconfig: str, version: str = "3.31.5", network_type: str = "vcn-native", **extra: Any) -> Any:
    def run() -> None:
        Calico("calico", CalicoArgs(calico_version=version, network_type=network_type, node_os="oracle-linux-8",
                                    kubeconfig=kubeconfig, manifest_mirror=mirror(), disable_flannel_addon=False,
                                    **extra))
    return run


def available(k8s: Any, name: str) -> bool:
    d: Any = client.AppsV1Api(k8s).read_namespaced_deployment(name, "kube-system")
    return bool(d.status.updated_replicas == d.spec.replicas and (d.status.available_replicas or 0) >= d.spec.replicas > 0)


def test_first_install_waits_for_calico_on_every_node(node_cluster: ControlPlane, node_k8s: Any,
                                                       make_stack: StackFactory) -> None:
    """With skip_await left False, up returns only when calico-node is ready on all 3 nodes and Deployments are up."""
    add_nodes(node_k8s, 3)
    stack = make_stack("calico-e2e-await", program(node_cluster.kubeconfig))
    assert stack.up(on_output=lambda _: None).summary.result == "succeeded"
    # Read right after up returned: nothing was given time to settle afterwards.
    pods = calico_node_pods(node_k8s)
    assert len(pods) == 3 and all(pod_ready(p) for p in pods)
    assert {p.spec.node_name for p in pods} == {"worker-0", "worker-1", "worker-2"}
    assert calico_node(node_k8s).status.number_ready == 3
    assert available(node_k8s, "calico-kube-controllers") and available(node_k8s, "calico-typha")


def test_upgrade_waits_until_every_pod_runs_the_new_image(node_cluster: ControlPlane, node_k8s: Any,
                                                          make_stack: StackFactory) -> None:
    """An awaited 3.31.5 -> 3.32.0 upgrade returns when every calico-node pod runs 3.32.0 and is ready."""
    add_nodes(node_k8s, 3)
    stack = make_stack("calico-e2e-await-upgrade", program(node_cluster.kubeconfig, "3.31.5"))
    assert stack.up(on_output=lambda _: None).summary.result == "succeeded"
    old_pods = {p.metadata.uid for p in calico_node_pods(node_k8s)}

    stack = make_stack("calico-e2e-await-upgrade", program(node_cluster.kubeconfig, "3.32.0"))
    assert stack.up(on_output=lambda _: None).summary.result == "succeeded"
    pods = calico_node_pods(node_k8s)
    assert len(pods) == 3 and not old_pods & {p.metadata.uid for p in pods}, "old pods still running"
    for pod in pods:
        assert pod_ready(pod), pod.metadata.name
        assert [c.image for c in pod.spec.containers] == [upstream_image("3.32.0")]
        assert [s.image for s in pod.status.container_statuses] == [upstream_image("3.32.0")]


def test_rollout_that_cannot_finish_fails_then_recovers(node_cluster: ControlPlane, node_k8s: Any,
                                                        make_stack: StackFactory) -> None:
    """Images that never become ready fail up within await_timeout_seconds naming the object; reverting recovers."""
    add_nodes(node_k8s, 3)
    project = "calico-e2e-await-fail"
    stack = make_stack(project, program(node_cluster.kubeconfig, await_timeout_seconds=20))
    assert stack.up(on_output=lambda _: None).summary.result == "succeeded"

    broken = f"{NEVER_READY_REGISTRY}/calico"
    stack = make_stack(project, program(node_cluster.kubeconfig, await_timeout_seconds=20, image_registry=broken))
    started = time.monotonic()
    with pytest.raises(auto.errors.CommandError) as info:
        stack.up(on_output=lambda _: None)
    elapsed = time.monotonic() - started
    message = str(info.value)
    assert "calico-daemonset-kube-system-calico-node" in message, message[-2000:]
    assert elapsed < 120, f"the failing up took {elapsed:.0f}s with a 20s await timeout"

    # Left as it was at the failure: the new template applied, the rollout stuck on a never-ready pod, nothing deleted.
    ds = calico_node(node_k8s)
    assert ds.spec.template.spec.containers[0].image == f"{broken}/calico/node:v3.31.5"
    pods = calico_node_pods(node_k8s)
    assert any(not pod_ready(p) and p.spec.containers[0].image.startswith(NEVER_READY_REGISTRY) for p in pods)
    assert exists(lambda: client.AppsV1Api(node_k8s).read_namespaced_deployment("calico-typha", "kube-system"))

    stack = make_stack(project, program(node_cluster.kubeconfig, await_timeout_seconds=60))
    assert stack.up(on_output=lambda _: None).summary.result == "succeeded"
    pods = calico_node_pods(node_k8s)
    assert len(pods) == 3 and all(pod_ready(p) for p in pods)
    assert {p.spec.containers[0].image for p in pods} == {upstream_image("3.31.5")}


def test_flannel_guard_against_real_nodes(node_cluster: ControlPlane, node_k8s: Any, make_stack: StackFactory) -> None:
    """flannel-overlay on a cluster whose nodes run flannel: refused at preview; allowed, calico-node gets ready."""
    add_nodes(node_k8s, 2)
    run_fake_flannel(node_k8s, 2, timeout=30)
    flannel_uid = flannel(node_k8s).metadata.uid

    stack = make_stack("calico-e2e-guard", program(node_cluster.kubeconfig, network_type="flannel-overlay"))
    with pytest.raises(auto.errors.CommandError, match=r"already has 2 node\(s\) running flannel"):
        stack.preview()
    assert flannel(node_k8s).metadata.uid == flannel_uid
    assert not exists(lambda: calico_node(node_k8s))

    stack = make_stack("calico-e2e-guard", program(node_cluster.kubeconfig, network_type="flannel-overlay",
                                                   allow_existing_nodes=True))
    assert stack.up(on_output=lambda _: None).summary.result == "succeeded"
    assert not flannel_present(node_k8s)
    pods = calico_node_pods(node_k8s)
    assert {p.spec.node_name for p in pods} == {"worker-0", "worker-1"} and all(pod_ready(p) for p in pods)


def test_hundred_nodes_first_install(node_cluster: ControlPlane, node_k8s: Any, make_stack: StackFactory,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Scale: an awaited first install on 100 fake nodes finishes with calico-node ready everywhere (time reported)."""
    add_nodes(node_k8s, 100)
    stack = make_stack("calico-e2e-scale", program(node_cluster.kubeconfig))
    started = time.monotonic()
    assert stack.up(on_output=lambda _: None).summary.result == "succeeded"
    elapsed = time.monotonic() - started
    assert calico_node(node_k8s).status.number_ready == 100
    with capsys.disabled():
        print(f"\n[scale] awaited first install, vcn-native 3.31.5, 100 fake nodes: {elapsed:.1f}s")


def test_typha_switches_in_place(node_cluster: ControlPlane, node_k8s: Any, make_stack: StackFactory) -> None:
    """flannel-overlay: turning Typha on creates its objects and updates calico-config/calico-node; off deletes them."""
    add_nodes(node_k8s, 3)
    project = "calico-e2e-typha"
    typha_objects = {("create", "kubernetes:apps/v1:Deployment", "calico-deployment-kube-system-calico-typha"),
                     ("create", "kubernetes:core/v1:Service", "calico-service-kube-system-calico-typha"),
                     ("create", "kubernetes:policy/v1:PodDisruptionBudget",
                      "calico-poddisruptionbudget-kube-system-calico-typha")}
    updated = {("update", "kubernetes:core/v1:ConfigMap", "calico-configmap-kube-system-calico-config"),
               ("update", "kubernetes:apps/v1:DaemonSet", "calico-daemonset-kube-system-calico-node")}
    core, apps = client.CoreV1Api(node_k8s), client.AppsV1Api(node_k8s)

    def uids() -> tuple[str, str]:
        cm: Any = core.read_namespaced_config_map("calico-config", "kube-system")
        return cm.metadata.uid, calico_node(node_k8s).metadata.uid

    stack = make_stack(project, program(node_cluster.kubeconfig, network_type="flannel-overlay", typha="off"))
    assert stack.up(on_output=lambda _: None).summary.result == "succeeded"
    before = uids()
    assert not exists(lambda: apps.read_namespaced_deployment("calico-typha", "kube-system"))

    stack = make_stack(project, program(node_cluster.kubeconfig, network_type="flannel-overlay", typha="on"))
    run = Run()
    assert stack.up(on_event=run.on_event, on_output=lambda _: None).summary.result == "succeeded"
    assert set(run.changed()) == typha_objects | updated, run.changed()
    assert uids() == before
    assert available(node_k8s, "calico-typha")
    pods = calico_node_pods(node_k8s)
    assert len(pods) == 3 and all(pod_ready(p) for p in pods)
    assert all("FELIX_TYPHAK8SSERVICENAME" in {e.name for e in p.spec.containers[0].env} for p in pods)

    stack = make_stack(project, program(node_cluster.kubeconfig, network_type="flannel-overlay", typha="off"))
    run = Run()
    assert stack.up(on_event=run.on_event, on_output=lambda _: None).summary.result == "succeeded"
    assert set(run.changed()) == {("delete", t, n) for _, t, n in typha_objects} | updated, run.changed()
    assert uids() == before
    assert not exists(lambda: apps.read_namespaced_deployment("calico-typha", "kube-system"))


def test_stack_program_with_pulumi_config(node_cluster: ControlPlane, node_k8s: Any, make_stack: StackFactory,
                                          pulumi_env: dict[str, str]) -> None:
    """__main__.py, configured with pulumi config (kubeconfig as a secret), previews and installs Calico, awaited."""
    add_nodes(node_k8s, 3)

    def stack_program() -> None:
        runpy.run_path(str(REPO / "__main__.py"), run_name="__main__")

    stack = make_stack("calico-oke", stack_program)  # the project of Pulumi.yaml: config keys are calico-oke:*
    stack.set_all_config({
        "calicoVersion": auto.ConfigValue("3.31.5"),
        "networkType": auto.ConfigValue("vcn-native"),
        "nodeOs": auto.ConfigValue("oracle-linux-8"),
        "manifestMirror": auto.ConfigValue(mirror()),
        "kubeconfig": auto.ConfigValue(node_cluster.kubeconfig, secret=True),
    })
    run = Run()
    stack.preview(on_event=run.on_event)
    assert ("create", "kubernetes:apps/v1:DaemonSet", "calico-daemonset-kube-system-calico-node") in run.changed()
    result = stack.up(on_output=lambda _: None)
    assert result.summary.result == "succeeded"
    assert result.outputs["calicoVersion"].value == "3.31.5"
    assert result.outputs["objectCount"].value == 42
    assert calico_node(node_k8s).status.number_ready == 3

    assert plaintext_leaks(pulumi_env, node_cluster.token) == [], "kubeconfig in plaintext in the backend"
    settings = list(Path(stack.workspace.work_dir).glob("Pulumi.*.yaml"))
    assert settings and all(node_cluster.token not in p.read_text() for p in settings), "kubeconfig in stack settings"
    assert "secure:" in settings[0].read_text()
