"""flannel-overlay, really enforced: after the fake flannel is removed, Calico's IPAM and CNI plugin give the dataplane
node's pods addresses from the configured pod CIDR, and Felix polices them, through an in-place upgrade too.

The stack program through the `pulumi` CLI, awaited, Calico 3.31.5, ``podCidr`` 10.244.0.0/16, two kwok nodes and one
dataplane node that all ran the fake kube-flannel-ds first. Tests share the cluster, in file order: the upgrade is last.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from calico_component.local.nodes import flannel_present
from calico_component.local.policydemo import BACKEND_PORT, CLIENTS, ENFORCED, NAMESPACE, OPEN, enforcement_line, felix_outages
from tests.e2e.enforcement import NETWORK_CONFIG, Enforcement, enforcement_cluster, upgrade_watched

POD_CIDR = NETWORK_CONFIG["flannel-overlay"]["podCidr"]


@pytest.fixture(scope="module")
def overlay(dataplane_tool_paths: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory) -> Iterator[Enforcement]:
    config = {"calicoVersion": "3.31.5", **NETWORK_CONFIG["flannel-overlay"]}
    with enforcement_cluster(dataplane_tool_paths, tmp_path_factory.mktemp("overlay"), config) as cluster:
        yield cluster


def test_pods_get_addresses_from_the_configured_pod_cidr(overlay: Enforcement) -> None:
    """flannel is gone; Calico's first pool is the configured CIDR (as startup made it from the live env), and the
    node's pods have addresses in it from Calico's IPAM, on cali* interfaces the CNI plugin named."""
    e = overlay
    assert not flannel_present(e.k8s)
    pool: Any = client.CustomObjectsApi(e.k8s).get_cluster_custom_object(
        "crd.projectcalico.org", "v1", "ippools", "default-ipv4-ippool")
    assert pool["spec"]["cidr"] == POD_CIDR
    network = ipaddress.ip_network(POD_CIDR)
    core = client.CoreV1Api(e.k8s)
    for name in [*CLIENTS, e.scenario.backend]:
        pod: Any = core.read_namespaced_pod(name, NAMESPACE)
        assert ipaddress.ip_address(pod.status.pod_ip) in network, (name, pod.status.pod_ip)
        assert pod.metadata.annotations["cni.projectcalico.org/podIP"] == f"{pod.status.pod_ip}/32"
    links = e.node.node_exec("ip", "-o", "link", "show").stdout
    assert links.count(": cali") >= 3 and ": oci" not in links, links


def test_demo_policies_are_enforced_on_calico_cni_pods(overlay: Enforcement) -> None:
    """The example's policies through `pulumi up`: the unlabelled client times out, role=frontend reaches 8080 only;
    removed, everything connects again."""
    e, s = overlay, overlay.scenario
    assert s.matrix() == OPEN
    e.policies(True)
    s.until("client", BACKEND_PORT, "timeout", 20)
    s.until("frontend", BACKEND_PORT, "ok", 20)
    assert s.matrix() == ENFORCED
    e.policies(False)
    s.until("client", BACKEND_PORT, "ok", 20)


def test_enforcement_holds_through_an_in_place_upgrade(overlay: Enforcement, tmp_path: Path) -> None:
    """Probing every 50 ms, `pulumi up` of calicoVersion 3.32.0 restarts the node's Calico (install-cni and Felix) on
    3.32.0 and the denied client never connects; afterwards preview has nothing to change."""
    change = upgrade_watched(overlay, "3.32.0", tmp_path / "probes")
    change.assert_denied_client_never_connected()
    print(f"flannel-overlay upgrade: {enforcement_line(change.logs)}; Felix not ready for "
          f"{max(felix_outages(overlay.node.events()), default=0):.1f}s")
    overlay.stack("preview", "--expect-no-changes")
