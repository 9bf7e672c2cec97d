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
    register_node,
    run_fake_flannel,
    wait_for,
)
from calico_component.steps.types import ROLLOUT_AWAITED
from tests.conftest import REPO, upstream_image
from tests.e2e.cluster import calico_node, delete_crds, exists, flannel, flannel_present
from tests.e2e.conftest import Run, StackFactory, api_client, mirror
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


def test_calico_node_max_unavailable_changes_in_place_without_restarting_pods(
        node_cluster: ControlPlane, node_k8s: Any, make_stack: StackFactory) -> None:
    """Installed with upstream's one node at a time, then `calico_node_max_unavailable="25%"`: preview shows one
    in-place update of calico-node (no replacement), and the awaited `up` changes its rolling update without
    restarting a single calico-node pod (same DaemonSet, same pods)."""
    add_nodes(node_k8s, 3)
    project = "calico-e2e-max-unavailable"
    stack = make_stack(project, program(node_cluster.kubeconfig))
    assert stack.up(on_output=lambda _: None).summary.result == "succeeded"
    ds = calico_node(node_k8s)
    assert ds.spec.update_strategy.rolling_update.max_unavailable == 1
    pods = {p.metadata.uid for p in calico_node_pods(node_k8s)}
    assert len(pods) == 3

    stack = make_stack(project, program(node_cluster.kubeconfig, calico_node_max_unavailable="25%"))
    changes = {str(getattr(op, "value", op)): n for op, n in stack.preview(on_output=lambda _: None).change_summary.items()}
    assert changes.get("update") == 1 and not changes.get("replace") and not changes.get("create"), changes
    run = Run()
    assert stack.up(on_event=run.on_event, on_output=lambda _: None).summary.result == "succeeded"
    # calico-node's pod template did not change, so there is no rollout to wait for
    assert run.changed() == [("update", "kubernetes:apps/v1:DaemonSet", "calico-daemonset-kube-system-calico-node")]
    after = calico_node(node_k8s)
    assert after.metadata.uid == ds.metadata.uid and after.spec.update_strategy.rolling_update.max_unavailable == "25%"
    assert {p.metadata.uid for p in calico_node_pods(node_k8s)} == pods, "calico-node pods were restarted"


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
    assert "calico-node: 0 of 3 pods updated and ready, and none more became ready for 20s" in message, message[-2000:]
    assert "ImagePullBackOff" in message, message[-2000:]
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
               ("update", "kubernetes:apps/v1:DaemonSet", "calico-daemonset-kube-system-calico-node"),
               # calico-node's template changed, so the component waits for its rollout again
               ("update", ROLLOUT_AWAITED.token, "calico-calico-node-rollout")}
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


def _ready_after(pod: Any) -> float:
    """Seconds from the pod's creation to its Ready condition (both stamped to the second)."""
    ready = next(c for c in pod.status.conditions if c.type == "Ready" and c.status == "True")
    return float((ready.last_transition_time - pod.metadata.creation_timestamp).total_seconds())


def test_fake_nodes_can_take_a_real_nodes_time_to_ready_calico_node(tool_paths: dict[str, Path]) -> None:
    """A cluster whose kwok nodes take 4 s (up to 6 s) to ready a calico-node pod, as a real node's pull, start and
    readiness probe do: another DaemonSet's pods on the same nodes are Ready first; each calico-node pod is Ready no
    sooner than its delay after it was created (seconds-resolution stamps: at least 3 s)."""
    with ControlPlane(tool_paths["etcd"], tool_paths["kube-apiserver"], tool_paths["kube-controller-manager"],
                      kube_scheduler=tool_paths["kube-scheduler"], kwok=tool_paths["kwok"],
                      calico_node_ready_seconds=4) as cp:
        k8s = api_client(cp)
        add_nodes(k8s, 2)
        apps: Any = client.AppsV1Api(k8s)
        for name in ("calico-node", "other-agent"):
            labels = {"k8s-app": name}
            apps.create_namespaced_daemon_set("kube-system", {
                "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name, "labels": labels},
                "spec": {"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {
                    "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}}}})

        def pods(app: str) -> list[Any]:
            found: Any = client.CoreV1Api(k8s).list_namespaced_pod("kube-system", label_selector=f"k8s-app={app}")
            return list(found.items)

        wait_for(lambda: len(pods("other-agent")) == 2 and all(pod_ready(p) for p in pods("other-agent")), 60,
                 "the other DaemonSet's pods Ready")
        wait_for(lambda: len(pods("calico-node")) == 2 and all(pod_ready(p) for p in pods("calico-node")), 60,
                 "calico-node Ready after the nodes' delay")
        other = [_ready_after(p) for p in pods("other-agent")]
        calico = [_ready_after(p) for p in pods("calico-node")]
        assert min(calico) >= 3 and max(other) < min(calico), (other, calico)


def test_a_rollout_longer_than_the_timeout_succeeds_and_a_stuck_one_fails_naming_its_node(
        tool_paths: dict[str, Path], make_stack: StackFactory) -> None:
    """Nodes that take 4-6 s to ready calico-node, awaitTimeoutSeconds 15: an awaited upgrade rolling 6 nodes one at a
    time (at least 24 s) succeeds. A node whose kubelet never starts a pod then holds the next upgrade: `up` fails
    within the deadline (not the provider's 10 minutes), naming the counts, the pod on that node and why; once that
    node is gone, the next `up` waits for the rest of the rollout and returns with every pod on the new template."""
    with ControlPlane(tool_paths["etcd"], tool_paths["kube-apiserver"], tool_paths["kube-controller-manager"],
                      kube_scheduler=tool_paths["kube-scheduler"], kwok=tool_paths["kwok"],
                      calico_node_ready_seconds=4) as cp:
        k8s = api_client(cp)
        add_nodes(k8s, 6)
        project = "calico-e2e-progress"
        stack = make_stack(project, program(cp.kubeconfig, "3.31.5", await_timeout_seconds=15))
        assert stack.up(on_output=lambda _: None).summary.result == "succeeded"
        started = time.monotonic()
        stack = make_stack(project, program(cp.kubeconfig, "3.32.0", await_timeout_seconds=15))
        assert stack.up(on_output=lambda _: None).summary.result == "succeeded"
        assert time.monotonic() - started >= 24
        pods = calico_node_pods(k8s)
        assert len(pods) == 6 and all(pod_ready(p) and p.spec.containers[0].image == upstream_image("3.32.0")
                                      for p in pods)

        register_node(client.CoreV1Api(k8s), "dead-0", "10.99.0.9", kwok=False)  # Ready, but nothing runs its pods
        wait_for(lambda: any(p.spec.node_name == "dead-0" for p in calico_node_pods(k8s)), 30, "a pod on dead-0")
        stack = make_stack(project, program(cp.kubeconfig, "3.31.5", await_timeout_seconds=15))
        started = time.monotonic()
        with pytest.raises(auto.errors.CommandError) as info:
            stack.up(on_output=lambda _: None)
        assert 15 <= time.monotonic() - started < 120
        message = str(info.value)
        assert "of 7 pods updated and ready, and none more became ready for 15s" in message, message[-3000:]
        assert "on dead-0: not started on its node (Pending)" in message, message[-3000:]

        client.CoreV1Api(k8s).delete_node("dead-0")  # the broken node removed, as its operator would
        # The pod garbage collector removes its pod (40 s after the node went, as on a real cluster): the rollout can
        # go on once the DaemonSet no longer counts it.
        wait_for(lambda: all(p.spec.node_name != "dead-0" for p in calico_node_pods(k8s)), 120, "dead-0's pod to go")
        assert stack.up(on_output=lambda _: None).summary.result == "succeeded"
        pods = calico_node_pods(k8s)
        assert len(pods) == 6 and all(pod_ready(p) and p.spec.containers[0].image == upstream_image("3.31.5")
                                      for p in pods)
