"""One cluster per stack, through the `pulumi` CLI: cluster_id alone means OKE's cluster for everything (never the
machine's current kube context), two inputs naming two clusters are refused, another network provider is refused,
a stack moved to another cluster waits there, and a NotReady node does not make a no-op preview change anything."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from calico_component.component.target import OCI_ENDPOINT_ENV
from calico_component.local.controlplane import ControlPlane
from calico_component.local.nodes import add_nodes, calico_node_pods, delete_nodes
from calico_component.local.program import copy_stack_program
from calico_component.local.workspace import PulumiCli, engine_env
from tests.e2e.cluster import assert_installed, calico_node, delete_crds, exists
from tests.e2e.conftest import api_client, mirror
from tests.fake_oke import FakeOke, write_oci_config


def _server(cp: ControlPlane) -> str:
    return str(yaml.safe_load(cp.kubeconfig)["clusters"][0]["cluster"]["server"]).split("://", 1)[1]


@pytest.fixture()
def second_cluster(tool_paths: dict[str, Path]) -> Iterator[ControlPlane]:
    """Another control plane with fake nodes (another cluster the same machine reaches), whose calico-node pods take
    2 to 3 seconds to become ready, as a real node's do (scaled down)."""
    with ControlPlane(tool_paths["etcd"], tool_paths["kube-apiserver"], tool_paths["kube-controller-manager"],
                      kube_scheduler=tool_paths["kube-scheduler"], kwok=tool_paths["kwok"],
                      calico_node_ready_seconds=2) as cp:
        yield cp


def _cli(tool_paths: dict[str, Path], tmp_path: Path, oke: FakeOke, **env: str) -> PulumiCli:
    environment = {**engine_env(tmp_path / "pulumi", tool_paths), OCI_ENDPOINT_ENV: oke.endpoint,
                   "OCI_CONFIG_FILE": str(write_oci_config(tmp_path)), **env}
    return PulumiCli(tool_paths["pulumi"], copy_stack_program(tmp_path / "program"), environment, timeout=600)


def _init(cli: PulumiCli, **config: str) -> None:
    cli("stack", "init", "dev")
    for key, value in {"calicoVersion": "3.32.0", "networkType": "vcn-native", "nodeOs": "oracle-linux-8",
                       "manifestMirror": mirror(), **config}.items():
        cli("config", "set", key, value)


def test_cluster_id_alone_installs_on_okes_cluster_and_two_clusters_are_refused(
        tool_paths: dict[str, Path], node_cluster: ControlPlane, node_k8s: Any, second_cluster: ControlPlane,
        tmp_path: Path) -> None:
    """The machine's current kube context (KUBECONFIG) is one cluster, OKE serves the kubeconfig of another for
    clusterId: with clusterId alone Calico is installed and awaited there, and the current context's cluster gets
    nothing. With the current context's kubeconfig passed too, preview and `up` fail naming both clusters, and
    neither cluster changes."""
    other = api_client(second_cluster)
    ambient = tmp_path / "ambient-kubeconfig"
    ambient.write_text(node_cluster.kubeconfig)
    add_nodes(other, 3)
    try:
        with FakeOke(served_kubeconfig=second_cluster.kubeconfig, kubernetes_endpoint=_server(second_cluster)) as oke:
            cli = _cli(tool_paths, tmp_path, oke, KUBECONFIG=str(ambient))
            _init(cli, clusterId=oke.cluster_id)
            cli("up", "--yes")
            assert_installed(other, "3.32.0")
            assert not exists(lambda: calico_node(node_k8s)), "Calico reached the current kube context's cluster"
            uid = calico_node(other).metadata.uid

            cli("config", "set", "--secret", "kubeconfig", stdin=node_cluster.kubeconfig)
            for verb in (("preview",), ("up", "--yes")):
                proc = cli(*verb, check=False)
                output = proc.stdout + proc.stderr
                assert proc.returncode != 0, output[-3000:]
                assert (f"cluster_id {oke.cluster_id} and kubeconfig name two different clusters: the kubeconfig's "
                        f"server {_server(node_cluster)} is none of OKE's endpoints") in output, output[-3000:]
                assert "Traceback" not in output
            assert not exists(lambda: calico_node(node_k8s)) and calico_node(other).metadata.uid == uid
            cli("config", "rm", "kubeconfig")
            cli("destroy", "--yes")
    finally:
        delete_nodes(other)


@pytest.mark.usefixtures("three_nodes")
def test_another_network_provider_is_refused_a_hand_install_is_not(tool_paths: dict[str, Path],
                                                                   node_cluster: ControlPlane, node_k8s: Any,
                                                                   tmp_path: Path) -> None:
    """A cluster with no other network provider previews the install; with the Tigera operator's namespace, or a
    calico-node DaemonSet in calico-system, preview fails naming what was found and what to do."""
    core, apps = client.CoreV1Api(node_k8s), client.AppsV1Api(node_k8s)
    with FakeOke() as oke:
        cli = _cli(tool_paths, tmp_path, oke)
        _init(cli)
        cli("config", "set", "--secret", "kubeconfig", stdin=node_cluster.kubeconfig)
        cli("preview")
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="calico-system")))
        try:
            apps.create_namespaced_daemon_set("calico-system", {  # type: ignore[arg-type]
                "metadata": {"name": "calico-node"},
                "spec": {"selector": {"matchLabels": {"k8s-app": "calico-node-operator"}},
                         "template": {"metadata": {"labels": {"k8s-app": "calico-node-operator"}},
                                      "spec": {"nodeSelector": {"no-such-node": "x"},
                                               "containers": [{"name": "calico-node", "image": "calico/node:v3.30.0"}]}}}})
            proc = cli("preview", check=False)
            output = proc.stdout + proc.stderr
            assert proc.returncode != 0, output[-3000:]
            assert ("another network provider runs on this cluster: Calico managed by the Tigera operator (namespace "
                    "calico-system); Calico (DaemonSet calico-system/calico-node)") in output, output[-3000:]
            assert "Nothing was changed" in output and "Traceback" not in output
        finally:
            core.delete_namespace("calico-system")


def _not_ready(k8s: Any, pod: Any) -> None:
    """Mark one pod's Ready condition False (as its kubelet would for a failing readiness probe)."""
    conditions = [{"type": c.type, "status": "False" if c.type in ("Ready", "ContainersReady") else c.status}
                  for c in pod.status.conditions]
    client.CoreV1Api(k8s).patch_namespaced_pod_status(pod.metadata.name, pod.metadata.namespace,
                                                     {"status": {"conditions": conditions}})


def test_a_stack_moved_to_another_cluster_waits_there_and_a_notready_pod_changes_nothing(
        tool_paths: dict[str, Path], node_cluster: ControlPlane, node_k8s: Any, second_cluster: ControlPlane,
        tmp_path: Path) -> None:
    """Installed and awaited on one cluster: one calico-node pod not ready leaves `preview --expect-no-changes` clean
    (the wait reads the cluster only when it waits). Moved to another cluster (a new kubeconfig, same inputs), `up`
    installs Calico there and waits for calico-node on that cluster's nodes (slow to become ready)."""
    other = api_client(second_cluster)
    add_nodes(node_k8s, 3)
    add_nodes(other, 3)
    try:
        with FakeOke() as oke:
            cli = _cli(tool_paths, tmp_path, oke)
            _init(cli)
            cli("config", "set", "--secret", "kubeconfig", stdin=node_cluster.kubeconfig)
            cli("up", "--yes")
            assert_installed(node_k8s, "3.32.0")
            _not_ready(node_k8s, calico_node_pods(node_k8s)[0])
            cli("preview", "--expect-no-changes")
            cli("up", "--yes")  # an unrelated no-op up does not wait on the not-ready pod
            cli("config", "set", "--secret", "kubeconfig", stdin=second_cluster.kubeconfig)
            output = cli("up", "--yes").stdout
            assert "calico-node: 3 of 3 pods updated and ready" in output, output[-3000:]
            assert_installed(other, "3.32.0")
            assert all(p.status.phase == "Running" for p in calico_node_pods(other))
            cli("destroy", "--yes")
    finally:
        delete_nodes(node_k8s)
        delete_crds(node_k8s)
        delete_nodes(other)
