"""Flannel removal against a real engine and API servers when OCI and the kube context misbehave: the OKE add-on step
survives a 429 burst and a timed-out `up` (the add-on still DELETING), and a second cluster named by KUBECONFIG is
never touched."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s_sdk
import pytest
from kubernetes import client
from pulumi import automation as auto

from calico_component import Calico, CalicoArgs
from calico_component.local.controlplane import ControlPlane
from tests.e2e.cluster import flannel_daemonset, flannel_present
from tests.e2e.conftest import StackFactory, api_client, mirror
from tests.fake_oke import FakeOke, write_oci_config

CLUSTER = "ocid1.cluster.oc1.iad.aaaaaaaae2e"
ADDON = f"/20180222/clusters/{CLUSTER}/addons/Flannel"


@pytest.fixture()
def oke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOke]:
    """The fake OKE endpoint, and an OCI config (signing key) the engine's dynamic provider finds via OCI_CONFIG_FILE."""
    monkeypatch.setenv("OCI_CONFIG_FILE", str(write_oci_config(tmp_path)))
    with FakeOke(cluster_id=CLUSTER) as server:
        yield server


def _flannel_uid(k8s: Any) -> str:
    meta = client.AppsV1Api(k8s).read_namespaced_daemon_set("kube-flannel-ds", "kube-system").metadata
    assert meta is not None
    return str(meta.uid)


def _with_addon(kubeconfig: str, endpoint: str, timeout: float) -> Any:
    def run() -> None:
        Calico("calico", CalicoArgs(
            calico_version="3.32.0", network_type="flannel-overlay", node_os="oracle-linux-8", kubeconfig=kubeconfig,
            cluster_id=pulumi.Output.from_input(CLUSTER), oci_endpoint=endpoint, oci_region="us-ashburn-1",
            addon_timeout_seconds=timeout, manifest_mirror=mirror(), skip_await=True))
    return run


def test_addon_step_survives_a_timed_out_up_and_a_429_burst(control_plane: ControlPlane, k8s: Any, oke: FakeOke,
                                                             make_stack: StackFactory) -> None:
    """An `up` whose add-on wait times out leaves the add-on DELETING at OKE; the next `up` meets three 429 answers
    (Retry-After 1 s), waits for the in-flight disable (OKE holds it until the add-on was read DELETING twice)
    instead of disabling again (OKE would answer 409), and finishes: flannel gone, Calico installed, one DELETE."""
    client.AppsV1Api(k8s).create_namespaced_daemon_set("kube-system", flannel_daemonset())
    oke.kubernetes_endpoint = control_plane.server.split("://", 1)[1]  # OKE's endpoint is the kubeconfig's server
    oke.hold_until_deleting_reads = 2
    stack = make_stack("calico-e2e-oke-faults", _with_addon(control_plane.kubeconfig, oke.endpoint, 3))
    with pytest.raises(auto.errors.CommandError, match="still IN_PROGRESS after 3s"):
        stack.up(on_output=lambda _: None)
    assert oke.addons["Flannel"] == "DELETING" and oke.requests[f"DELETE {ADDON}"] == 1
    assert flannel_present(k8s), "the DaemonSet step must wait for the add-on step"

    oke.fail("GET", 429, times=3, path_part="/addons/", retry_after="1")
    stack = make_stack("calico-e2e-oke-faults", _with_addon(control_plane.kubeconfig, oke.endpoint, 120))
    assert stack.up(on_output=lambda _: None).summary.result == "succeeded"
    assert oke.answers[429] == 3 and oke.answers[409] == 0 and oke.requests[f"DELETE {ADDON}"] == 1
    assert oke.served["DELETING"] == 2
    assert "Flannel" not in oke.addons and not flannel_present(k8s)
    deployment = stack.export_stack().deployment
    assert deployment is not None
    addon = next(r for r in deployment["resources"] if r["urn"].endswith("::calico-flannel-addon"))
    assert addon["outputs"]["addonState"] == "ABSENT"


@pytest.fixture()
def other_cluster(tool_paths: dict[str, Path]) -> Iterator[ControlPlane]:
    """A second control plane: the cluster the machine's current kube context names."""
    with ControlPlane(tool_paths["etcd"], tool_paths["kube-apiserver"], tool_paths["kube-controller-manager"]) as cp:
        yield cp


def _with_opts_providers(kubeconfig: str, pass_kubeconfig: bool) -> Any:
    """A flannel-overlay stack on a basic cluster whose Kubernetes provider comes from opts."""
    def run() -> None:
        provider = k8s_sdk.Provider("target", kubeconfig=kubeconfig)
        Calico("calico", CalicoArgs(
            calico_version="3.32.0", network_type="flannel-overlay", node_os="oracle-linux-8",
            disable_flannel_addon=False, kubeconfig=kubeconfig if pass_kubeconfig else None,
            manifest_mirror=mirror(), skip_await=True),
            opts=pulumi.ResourceOptions(providers={"kubernetes": provider}))
    return run


def test_flannel_on_the_current_kube_context_is_never_touched(control_plane: ControlPlane, k8s: Any,
                                                              other_cluster: ControlPlane, make_stack: StackFactory,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """KUBECONFIG names a second cluster running kube-flannel-ds. A stack whose providers come from opts, with no
    kubeconfig or cluster_id input, fails at preview naming the inputs, and neither cluster's flannel is touched; given
    its cluster's kubeconfig, up removes flannel there only, and the second cluster keeps its DaemonSet (same UID)."""
    other = api_client(other_cluster)
    for api in (k8s, other):
        client.AppsV1Api(api).create_namespaced_daemon_set("kube-system", flannel_daemonset())
    before = _flannel_uid(other)
    monkeypatch.setenv("KUBECONFIG", str(other_cluster.kubeconfig_path))

    stack = make_stack("calico-e2e-kube-context", _with_opts_providers(control_plane.kubeconfig, False))
    with pytest.raises(auto.errors.CommandError, match="never on the current kube context"):
        stack.preview(on_output=lambda _: None)
    with pytest.raises(auto.errors.CommandError, match="never on the current kube context"):
        stack.up(on_output=lambda _: None)
    assert flannel_present(k8s) and flannel_present(other)

    stack = make_stack("calico-e2e-kube-context", _with_opts_providers(control_plane.kubeconfig, True))
    assert stack.up(on_output=lambda _: None).summary.result == "succeeded"
    assert not flannel_present(k8s)
    assert flannel_present(other) and _flannel_uid(other) == before
