"""What the local dataplane node derives from a live Pod before it runs Calico: env, image release, services, names."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from calico_component import FetchOptions
from calico_component.local import podspec
from calico_component.local.podspec import PodSpecError
from calico_component.manifest.render import render
from tests.conftest import mirror_path


def _rendered(network_type: str, version: str = "3.32.0") -> list[dict[str, Any]]:
    result = render(version, network_type, "oracle-linux-8", pod_cidr="10.244.0.0/16" if network_type == "flannel-overlay"
                    else None, fetch_options=FetchOptions(mirror=str(mirror_path()), offline=True))
    return [dict(o) for o in result.objects]


def _calico_node_pod(objects: list[dict[str, Any]], node: str = "node-a") -> dict[str, Any]:
    """A pod as the DaemonSet controller creates it from the rendered template, bound to ``node``."""
    ds = next(o for o in objects if o["kind"] == "DaemonSet" and o["metadata"]["name"] == "calico-node")
    template = copy.deepcopy(ds["spec"]["template"])
    return {"metadata": {**template["metadata"], "name": "calico-node-x1", "namespace": "kube-system", "uid": "u-1"},
            "spec": {**template["spec"], "nodeName": node}, "status": {"hostIP": "10.0.0.7", "podIP": "10.0.0.7"}}


def _config_maps(objects: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    return {o["metadata"]["name"]: o.get("data") or {} for o in objects if o["kind"] == "ConfigMap"}


def test_vcn_native_env_is_the_templates_with_the_node_name_resolved() -> None:
    """vcn-native: NODENAME comes from the pod's spec.nodeName and Oracle's edits reach Felix as written."""
    pod = _calico_node_pod(_rendered("vcn-native"), node="worker-9")
    env = podspec.resolve_env(pod, {})
    assert env["NODENAME"] == "worker-9"
    assert env["FELIX_INTERFACEPREFIX"] == "oci"
    assert env["FELIX_CHAININSERTMODE"] == "Append"
    assert env["FELIX_IPTABLESBACKEND"] == "NFT"
    assert "FELIX_TYPHAK8SSERVICENAME" not in env
    assert podspec.config_maps_referenced(pod) == []


def test_flannel_overlay_env_reads_the_live_config_map() -> None:
    """flannel-overlay: configMapKeyRef values come from calico-config as given; an optional envFrom that is absent
    adds nothing."""
    objects = _rendered("flannel-overlay")
    pod = _calico_node_pod(objects)
    maps = _config_maps(objects)
    assert "calico-config" in podspec.config_maps_referenced(pod)
    env = podspec.resolve_env(pod, {"calico-config": maps["calico-config"]})
    assert env["CALICO_NETWORKING_BACKEND"] == maps["calico-config"]["calico_backend"]
    assert env["CALICO_IPV4POOL_CIDR"] == "10.244.0.0/16"
    changed = {"calico-config": {**maps["calico-config"], "calico_backend": "vxlan"}}
    assert podspec.resolve_env(pod, changed)["CALICO_NETWORKING_BACKEND"] == "vxlan", "the live value, not a render"


def test_missing_config_map_is_refused_naming_it() -> None:
    """A non-optional ConfigMap that does not exist stops the container, and the error names it."""
    pod = _calico_node_pod(_rendered("flannel-overlay"))
    with pytest.raises(PodSpecError, match="ConfigMap 'calico-config' does not exist"):
        podspec.resolve_env(pod, {})


def test_env_order_references_and_env_from() -> None:
    """envFrom comes first and env overrides it; $(VAR) expands defined variables, $$ escapes, the rest stays."""
    pod = {"metadata": {"name": "p", "namespace": "ns", "labels": {"tier": "db"}},
           "spec": {"nodeName": "n", "containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": "cm"}}], "env": [
               {"name": "A", "value": "from-env"},
               {"name": "B", "value": "$(A)-$(UNDEFINED)-$$(A)"},
               {"name": "TIER", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['tier']"}}},
               {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k", "optional": True}}}]}]}}
    env = podspec.resolve_env(pod, {"cm": {"A": "from-map", "C": "only-map"}})
    assert env == {"A": "from-env", "B": "from-env-$(UNDEFINED)-$(A)", "C": "only-map", "TIER": "db"}


def test_unsupported_value_source_is_refused() -> None:
    """A valueFrom the node cannot resolve (a secret) is an error naming the variable, never silently dropped."""
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "env": [
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}]}}
    with pytest.raises(PodSpecError, match="env TOKEN of pod p"):
        podspec.resolve_env(pod, {})


def test_felix_service_env_is_what_the_image_exports() -> None:
    """calico/node's Felix service copies NODENAME and DATASTORE_TYPE to Felix's own names."""
    env = podspec.felix_service_env({"NODENAME": "worker-1", "DATASTORE_TYPE": "kubernetes", "X": "y"})
    assert env["FELIX_FELIXHOSTNAME"] == "worker-1"
    assert env["FELIX_DATASTORETYPE"] == "kubernetes"
    assert env["X"] == "y" and env["FELIX_ETCDENDPOINTS"] == ""


@pytest.mark.parametrize("version", ["3.30.3", "3.31.5"])
def test_node_services_follow_the_backend_and_cni_settings(version: str) -> None:
    """Before 3.32, each helper is its own service: policy only (vcn-native) runs Felix without BGP or CNI management;
    the overlay would run BIRD, which is reported as not run; 3.31 adds complete-startup."""
    release = f"v{version}"
    vcn = podspec.node_services(podspec.resolve_env(_calico_node_pod(_rendered("vcn-native", version)), {}), release)
    assert "-felix" in vcn.long_running and "-status-reporter" in vcn.long_running
    assert "-monitor-addresses" not in vcn.long_running and "-monitor-token" not in vcn.long_running
    assert vcn.not_run == ()
    assert ("-complete-startup" in vcn.long_running) == (version == "3.31.5")
    objects = _rendered("flannel-overlay", version)
    overlay = podspec.node_services(podspec.resolve_env(_calico_node_pod(objects), _config_maps(objects)), release)
    assert {"-felix", "-monitor-addresses", "-monitor-token"} <= set(overlay.long_running)
    assert overlay.not_run == ("bird", "bird6", "confd")


def test_node_services_of_332_are_felix_and_one_consolidated_process() -> None:
    """From 3.32 calico/node runs Felix and a single -node-services process (the helpers as goroutines)."""
    vcn = podspec.node_services(podspec.resolve_env(_calico_node_pod(_rendered("vcn-native")), {}), "v3.32.0")
    assert sorted(vcn.long_running) == ["-felix", "-node-services"] and vcn.not_run == ()
    objects = _rendered("flannel-overlay")
    overlay = podspec.node_services(podspec.resolve_env(_calico_node_pod(objects), _config_maps(objects)), "v3.32.0")
    assert sorted(overlay.long_running) == ["-felix", "-node-services"]
    assert overlay.not_run == ("bird", "bird6", "confd")


@pytest.mark.parametrize(("image", "release"), [
    ("docker.io/calico/node:v3.30.3", "v3.30.3"),
    ("quay.io/calico/node:v3.32.0", "v3.32.0"),
    ("iad.ocir.io/tenancy/calico/node:v3.31.5", "v3.31.5"),
    ("calico/node:v3.30.0@sha256:" + "0" * 64, "v3.30.0"),
    ("docker.io/calico/node", None),
])
def test_image_release(image: str, release: str | None) -> None:
    """The binaries a calico-node pod runs are picked by its image tag, whatever registry serves it."""
    assert podspec.image_release(image) == release


def test_veth_name_fits_an_interface_name_and_is_per_pod() -> None:
    """Host-side names: the prefix, then 11 hex digits; at most 15 characters (IFNAMSIZ); distinct per namespace."""
    name = podspec.veth_name("oci", "policy-demo", "backend-7d9f")
    assert name.startswith("oci") and len(name) == 14 and int(name[3:], 16) >= 0
    assert name == podspec.veth_name("oci", "policy-demo", "backend-7d9f")
    assert name != podspec.veth_name("oci", "other", "backend-7d9f")
    assert podspec.interface_prefix({"FELIX_INTERFACEPREFIX": "oci,tun"}) == "oci"
    assert podspec.interface_prefix({}) == "cali"
