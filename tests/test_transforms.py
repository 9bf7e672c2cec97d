"""Rendered manifests match Oracle's documented edits for every version, mode and node OS."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest

from calico_component import FetchOptions, ManifestShapeError
from calico_component.errors import ConfigurationError
from calico_component.manifest.parsing import parse_manifest
from calico_component.manifest.render import render
from calico_component.manifest.transforms import TransformOptions, transform
from tests.conftest import mirror_path, upstream_bytes, upstream_image, upstream_objects

VERSIONS = ["3.25.1", "3.26.1", "3.26.4", "3.27.2", "3.28.0", "3.28.2", "3.29.2", "3.30.0", "3.30.3", "3.31.5", "3.32.0"]
FILES = {"flannel-overlay": "calico.yaml", "vcn-native": "calico-policy-only.yaml"}

# Written from PROCEDURE.md section B.3.6 and A.5, not from the code.
DOC_VCN_ENV = [
    {"name": "FELIX_INTERFACEPREFIX", "value": "oci"},
    {"name": "NO_DEFAULT_POOLS", "value": "true"},
    {"name": "FELIX_CHAININSERTMODE", "value": "Append"},
    {"name": "FELIX_IPTABLESMANGLEALLOWACTION", "value": "Return"},
]
DOC_NFT = {"name": "FELIX_IPTABLESBACKEND", "value": "NFT"}
DOC_REMOVED_VOLUMES = {"cni-bin-dir", "cni-net-dir", "cni-log-dir"}
DOC_REMOVED_MOUNTS = {"cni-net-dir", "cni-log-dir"}
DOC_KEPT_VOLUMES = {"lib-modules", "var-run-calico", "var-lib-calico", "xtables-lock", "sys-fs", "bpffs", "nodeproc",
                    "policysync"}


def _is_calico_node(o: dict[str, Any]) -> bool:
    return bool(o["kind"] == "DaemonSet" and o["metadata"]["name"] == "calico-node")


def _container(ds: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in ds["spec"]["template"]["spec"]["containers"] if c["name"] == "calico-node")


def _render(version: str, mode: str, os_name: str, **kw: Any) -> list[dict[str, Any]]:
    result = render(version, mode, os_name, fetch_options=FetchOptions(mirror=str(mirror_path())), **kw)
    return [dict(o) for o in result.objects]


def expected_calico_node(version: str, mode: str, os_name: str) -> dict[str, Any]:
    """The upstream DaemonSet edited by hand the way the document says."""
    ds = next(o for o in upstream_objects(version, FILES[mode]) if _is_calico_node(o))
    pod = ds["spec"]["template"]["spec"]
    c = _container(ds)
    nft = [DOC_NFT] if os_name == "oracle-linux-8" else []
    if mode == "vcn-native":
        del pod["initContainers"]
        c["env"] = [e for e in c["env"] if e["name"] != "FELIX_TYPHAK8SSERVICENAME"] + DOC_VCN_ENV + nft
        del c["envFrom"]
        pod["volumes"] = [v for v in pod["volumes"] if v["name"] not in DOC_REMOVED_VOLUMES]
        c["volumeMounts"] = [m for m in c["volumeMounts"] if m["name"] not in DOC_REMOVED_MOUNTS]
    else:
        c["env"] = c["env"] + nft
    return ds


@pytest.mark.parametrize("os_name", ["oracle-linux-7", "oracle-linux-8"])
@pytest.mark.parametrize("mode", ["flannel-overlay", "vcn-native"])
@pytest.mark.parametrize("version", VERSIONS)
def test_calico_node_matches_document_and_rest_is_untouched(version: str, mode: str, os_name: str) -> None:
    """calico-node ends exactly as PROCEDURE.md describes and every other object equals upstream."""
    rendered = _render(version, mode, os_name)
    upstream = upstream_objects(version, FILES[mode])
    assert len(rendered) == len(upstream)
    for got, want in zip(rendered, upstream, strict=True):
        if _is_calico_node(want):
            assert got == expected_calico_node(version, mode, os_name)
        else:
            assert got == want
    ds = next(o for o in rendered if _is_calico_node(o))
    pod = ds["spec"]["template"]["spec"]
    if mode == "vcn-native":
        assert "initContainers" not in pod and "envFrom" not in _container(ds)
        assert {v["name"] for v in pod["volumes"]} == DOC_KEPT_VOLUMES
        assert not DOC_REMOVED_MOUNTS & {m["name"] for m in _container(ds)["volumeMounts"]}
    nft = [e for e in _container(ds)["env"] if e["name"] == "FELIX_IPTABLESBACKEND"]
    assert nft == ([DOC_NFT] if os_name == "oracle-linux-8" else [])


def test_oracle_linux_9_gets_nft_like_oracle_linux_8() -> None:
    """Oracle Linux 9 nodes (iptables-nft only) get the same NFT backend setting as Oracle Linux 8."""
    for mode in FILES:
        assert _render("3.28.0", mode, "oracle-linux-9") == _render("3.28.0", mode, "oracle-linux-8")


@pytest.mark.parametrize("mode", ["flannel-overlay", "vcn-native"])
@pytest.mark.parametrize("os_name", ["oracle-linux-7", "oracle-linux-8"])
def test_transform_does_not_mutate_input_and_is_idempotent(mode: str, os_name: str) -> None:
    """Transforms never mutate their input, and transforming twice equals transforming once."""
    parsed = parse_manifest(upstream_bytes("3.30.0", FILES[mode]))
    snapshot = copy.deepcopy(parsed)
    opts = TransformOptions(network_type=mode, node_os=os_name, image_registry="iad.ocir.io/t/calico",  # type: ignore[arg-type]
                            version="3.30.0")
    once = transform(parsed, opts)
    assert parsed == snapshot
    twice = transform(once, opts)
    assert twice == once
    assert once != parsed


def test_image_registry_rewrites_every_image() -> None:
    """--image-registry points every container and init container at the mirror, keeping repo and tag."""
    rendered = _render("3.28.0", "flannel-overlay", "oracle-linux-7", image_registry="iad.ocir.io/mytenancy/calico")
    images = []
    for o in rendered:
        pod = o.get("spec", {}).get("template", {}).get("spec")
        if pod:
            images += [c["image"] for k in ("initContainers", "containers") for c in pod.get(k, [])]
    assert images and all(i.startswith("iad.ocir.io/mytenancy/calico/calico/") for i in images)
    assert "iad.ocir.io/mytenancy/calico/calico/node:v3.28.0" in images
    assert not any("docker.io" in i for i in images)


@pytest.mark.parametrize("mode", ["flannel-overlay", "vcn-native"])
def test_image_registry_rewrites_quay_images_like_docker_ones(mode: str) -> None:
    """3.31+ images come from quay.io: the mirror replaces that host exactly as it replaces docker.io (repo and tag
    kept, init containers included), and nothing of quay.io is left."""
    images = {v: _images(_render(v, mode, "oracle-linux-8", image_registry="iad.ocir.io/t/calico")) for v in
              ("3.30.3", "3.31.5")}
    upstream = {v: _images(upstream_objects(v, FILES[mode])) for v in ("3.30.3", "3.31.5")}
    assert any(i.startswith("quay.io/") for i in upstream["3.31.5"])
    assert all(i.startswith("docker.io/") for i in upstream["3.30.3"])
    for v in images:
        assert images[v] and all(i.startswith("iad.ocir.io/t/calico/calico/") and i.endswith(f":v{v}") for i in images[v])
    assert "iad.ocir.io/t/calico/calico/node:v3.31.5" in images["3.31.5"]


@pytest.mark.parametrize("version", VERSIONS)
def test_every_deployed_image_is_fully_qualified(version: str) -> None:
    """Every image a render of a table release deploys starts with a registry host (CRI-O on OKE 1.34.1+ pulls
    nothing else): upstream's own hosts, kept as they are."""
    for mode in FILES:
        images = _images(_render(version, mode, "oracle-linux-8"))
        assert images and all(i.split("/")[0] in ("docker.io", "quay.io") for i in images), images


def test_an_unqualified_upstream_image_fails_loudly() -> None:
    """An upstream manifest whose image lost its registry host is a ManifestShapeError naming the object, container
    and image; the same manifest with the host is rendered."""
    def mutate(ds: dict[str, Any]) -> None:
        _container(ds)["image"] = "calico/node:v3.28.0"

    good = parse_manifest(upstream_bytes("3.28.0", "calico-policy-only.yaml"))
    options = TransformOptions(network_type="vcn-native", node_os="oracle-linux-8", version="3.28.0")
    assert transform(good, options)
    with pytest.raises(ManifestShapeError) as info:
        transform(parse_manifest(_without(mutate)), options)
    message = str(info.value)
    assert "DaemonSet kube-system/calico-node" in message and "containers[calico-node].image" in message
    assert "'calico/node:v3.28.0'" in message and "fully qualified" in message


def _flannel_with_unqualified_init_image() -> bytes:
    """Upstream 3.32.0 calico.yaml whose calico-node init container install-cni lost its registry host."""
    import yaml

    objs = upstream_objects("3.32.0", "calico.yaml")
    ds = next(o for o in objs if _is_calico_node(o))
    init = next(c for c in ds["spec"]["template"]["spec"]["initContainers"] if c["name"] == "install-cni")
    init["image"] = "calico/cni:v3.32.0"
    return yaml.safe_dump_all(objs).encode()


def test_an_unqualified_init_container_image_fails_and_a_registry_rewrite_qualifies_it() -> None:
    """flannel-overlay keeps calico-node's init containers: an unqualified one fails naming initContainers[...];
    with image_registry the same manifest renders, every image under the registry."""
    options = TransformOptions(network_type="flannel-overlay", node_os="oracle-linux-8", version="3.32.0")
    assert transform(parse_manifest(upstream_bytes("3.32.0", "calico.yaml")), options)
    bad = parse_manifest(_flannel_with_unqualified_init_image())
    with pytest.raises(ManifestShapeError) as info:
        transform(bad, options)
    assert "initContainers[install-cni].image" in str(info.value) and "'calico/cni:v3.32.0'" in str(info.value)
    mirrored = replace(options, image_registry="iad.ocir.io/t/calico")
    images = _images([dict(o) for o in transform(bad, mirrored)])
    assert "iad.ocir.io/t/calico/calico/cni:v3.32.0" in images
    assert images and all(i.startswith("iad.ocir.io/t/calico/calico/") for i in images), images


@pytest.mark.parametrize("registry", ["localhost:5000/calico", "localhost/calico", "registry:5000/x", "localhost"])
def test_a_registry_with_a_host_rewrites_every_image(registry: str) -> None:
    """A registry given as host (with or without port) and optional path takes every image, registry first."""
    images = _images(_render("3.32.0", "vcn-native", "oracle-linux-8", image_registry=registry))
    assert images and all(i.startswith(registry + "/calico/") for i in images), images


@pytest.mark.parametrize("registry", ["mycalico", "mytenancy/calico"])
def test_a_registry_without_a_host_is_refused(registry: str) -> None:
    """image_registry must start with a registry host; the error names the value and shows a qualified one."""
    assert _render("3.32.0", "vcn-native", "oracle-linux-8", image_registry="localhost:5000/calico")
    with pytest.raises(ConfigurationError) as info:
        _render("3.32.0", "vcn-native", "oracle-linux-8", image_registry=registry)
    assert repr(registry) in str(info.value) and "registry host" in str(info.value)
    assert "'iad.ocir.io/mytenancy'" in str(info.value)


def _images(objects: list[dict[str, Any]]) -> list[str]:
    found = []
    for o in objects:
        pod = o.get("spec", {}).get("template", {}).get("spec")
        if pod:
            found += [c["image"] for k in ("initContainers", "containers") for c in pod.get(k, [])]
    return found


def test_image_registry_is_off_by_default() -> None:
    """Without the option, images stay what upstream has (docker.io)."""
    rendered = _render("3.28.0", "vcn-native", "oracle-linux-8")
    ds = next(o for o in rendered if _is_calico_node(o))
    assert _container(ds)["image"] == "docker.io/calico/node:v3.28.0"


def test_pod_cidr_sets_ipv4_pool_in_flannel_overlay() -> None:
    """pod_cidr adds CALICO_IPV4POOL_CIDR with the cluster's pods CIDR to calico-node."""
    ds = next(o for o in _render("3.28.0", "flannel-overlay", "oracle-linux-8", pod_cidr="10.244.0.0/16")
              if _is_calico_node(o))
    env = _container(ds)["env"]
    assert {"name": "CALICO_IPV4POOL_CIDR", "value": "10.244.0.0/16"} in env
    assert DOC_NFT in env


@pytest.mark.parametrize("cidr", ["10.244.0.1/16", "banana", "fd00::/64"])
def test_bad_pod_cidr_is_rejected(cidr: str) -> None:
    """A pod CIDR that is not an IPv4 network is a ConfigurationError naming the value."""
    with pytest.raises(ConfigurationError, match="pod CIDR"):
        _render("3.28.0", "flannel-overlay", "oracle-linux-8", pod_cidr=cidr)


def test_pod_cidr_refused_in_vcn_native() -> None:
    """pod_cidr makes no sense beside the VCN-native CNI and is refused."""
    with pytest.raises(ConfigurationError, match="only to flannel-overlay"):
        _render("3.28.0", "vcn-native", "oracle-linux-8", pod_cidr="10.244.0.0/16")


def _without(mutate: Any) -> bytes:
    objs = upstream_objects("3.28.0", "calico-policy-only.yaml")
    for o in objs:
        if _is_calico_node(o):
            mutate(o)
    import yaml

    return yaml.safe_dump_all(objs).encode()


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda ds: ds["spec"]["template"]["spec"].pop("initContainers"), "initContainers"),
        (lambda ds: _container(ds).pop("envFrom"), "envFrom"),
        (lambda ds: _container(ds).__setitem__(
            "env", [e for e in _container(ds)["env"] if e["name"] != "FELIX_TYPHAK8SSERVICENAME"]),
         "FELIX_TYPHAK8SSERVICENAME"),
        (lambda ds: ds["spec"]["template"]["spec"].__setitem__(
            "volumes", [v for v in ds["spec"]["template"]["spec"]["volumes"] if v["name"] != "cni-log-dir"]),
         "volumes[cni-log-dir]"),
        (lambda ds: _container(ds).__setitem__(
            "volumeMounts", [m for m in _container(ds)["volumeMounts"] if m["name"] != "cni-net-dir"]),
         "volumeMounts[cni-net-dir]"),
    ],
)
def test_missing_edited_field_fails_loudly(mutate: Any, field: str) -> None:
    """A manifest missing a field a step must remove fails with ManifestShapeError naming version, object, field."""
    parsed = parse_manifest(_without(mutate))
    with pytest.raises(ManifestShapeError) as info:
        transform(parsed, TransformOptions(network_type="vcn-native", node_os="oracle-linux-8", version="3.28.0"))
    msg = str(info.value)
    assert "3.28.0" in msg and "DaemonSet kube-system/calico-node" in msg and field in msg


def test_manifest_without_calico_node_is_rejected() -> None:
    """A manifest with no calico-node DaemonSet is a ManifestShapeError in both modes."""
    objs = [o for o in upstream_objects("3.28.0", "calico.yaml") if not _is_calico_node(o)]
    import yaml

    parsed = parse_manifest(yaml.safe_dump_all(objs))
    for mode in FILES:
        with pytest.raises(ManifestShapeError, match=r"calico-node.*missing"):
            transform(parsed, TransformOptions(network_type=mode, node_os="oracle-linux-7", version="3.28.0"))  # type: ignore[arg-type]


def test_conflicting_env_value_is_rejected() -> None:
    """An env var the document adds that is already set to another value is a conflict, not overwritten."""
    def mutate(ds: dict[str, Any]) -> None:
        _container(ds)["env"].append({"name": "FELIX_IPTABLESBACKEND", "value": "Legacy"})

    objs = upstream_objects("3.28.0", "calico.yaml")
    for o in objs:
        if _is_calico_node(o):
            mutate(o)
    import yaml

    parsed = parse_manifest(yaml.safe_dump_all(objs))
    with pytest.raises(ManifestShapeError, match=r"FELIX_IPTABLESBACKEND.*Legacy"):
        transform(parsed, TransformOptions(network_type="flannel-overlay", node_os="oracle-linux-8", version="3.28.0"))


def test_partly_transformed_manifest_is_rejected() -> None:
    """A manifest with the vcn-native env but leftover CNI volumes is refused rather than edited again."""
    def mutate(ds: dict[str, Any]) -> None:
        _container(ds)["env"].append({"name": "FELIX_INTERFACEPREFIX", "value": "oci"})

    with pytest.raises(ManifestShapeError, match="partly transformed"):
        transform(parse_manifest(_without(mutate)),
                  TransformOptions(network_type="vcn-native", node_os="oracle-linux-7", version="3.28.0"))


# Written from upstream's calico-typha.yaml (identical in every table version), not from the code:
# calico.yaml plus these three objects, calico-config pointing calico-node at the Typha service.
TYPHA_OBJECTS = {("PodDisruptionBudget", "calico-typha"), ("Service", "calico-typha"), ("Deployment", "calico-typha")}
TYPHA_SERVICE_NAME = "calico-typha"
TYPHA_UPSTREAM_REPLICAS = 1
TYPHA_PORT = 5473


def _named(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name)


@pytest.mark.parametrize("version", VERSIONS)
def test_flannel_overlay_with_typha_matches_upstream_typha_manifest(version: str) -> None:
    """--typha renders calico-typha.yaml: calico.yaml's objects plus Typha's, with only the documented NFT edit."""
    rendered = _render(version, "flannel-overlay", "oracle-linux-8", typha=True)
    plain = {(o["kind"], o["metadata"]["name"]) for o in upstream_objects(version, "calico.yaml")}
    assert {(o["kind"], o["metadata"]["name"]) for o in rendered} == plain | TYPHA_OBJECTS
    for got, want in zip(rendered, upstream_objects(version, "calico-typha.yaml"), strict=True):
        if _is_calico_node(want):
            _container(want)["env"].append(DOC_NFT)
        assert got == want
    assert _named(rendered, "ConfigMap", "calico-config")["data"]["typha_service_name"] == TYPHA_SERVICE_NAME
    typha = _named(rendered, "Deployment", "calico-typha")
    assert typha["spec"]["replicas"] == TYPHA_UPSTREAM_REPLICAS
    assert typha["spec"]["template"]["spec"]["containers"][0]["image"] == upstream_image(version, "calico-typha")
    assert _named(rendered, "Service", "calico-typha")["spec"]["ports"][0]["port"] == TYPHA_PORT
    env = {e["name"]: e for e in _container(_named(rendered, "DaemonSet", "calico-node"))["env"]}
    assert env["FELIX_TYPHAK8SSERVICENAME"]["valueFrom"]["configMapKeyRef"] == {
        "name": "calico-config", "key": "typha_service_name"}


def test_typha_replicas_scale_flannel_overlay_typha() -> None:
    """typha_replicas sets calico-typha's replicas when flannel-overlay runs Typha."""
    rendered = _render("3.30.0", "flannel-overlay", "oracle-linux-9", typha=True, typha_replicas=3,
                       pod_cidr="10.244.0.0/16")
    assert _named(rendered, "Deployment", "calico-typha")["spec"]["replicas"] == 3
    env = _container(_named(rendered, "DaemonSet", "calico-node"))["env"]
    assert {"name": "CALICO_IPV4POOL_CIDR", "value": "10.244.0.0/16"} in env and DOC_NFT in env


def test_typha_replicas_without_typha_in_flannel_overlay_is_refused() -> None:
    """typha_replicas on plain calico.yaml (no Typha) is an error that says how to turn Typha on."""
    with pytest.raises(ConfigurationError, match=r"typha_replicas=2 needs Typha.*typha='on'"):
        _render("3.28.0", "flannel-overlay", "oracle-linux-8", typha_replicas=2)


def test_typha_flag_refused_in_vcn_native() -> None:
    """--typha selects calico-typha.yaml, which only flannel-overlay uses; vcn-native refuses it clearly."""
    with pytest.raises(ConfigurationError, match="only to flannel-overlay"):
        _render("3.28.0", "vcn-native", "oracle-linux-8", typha=True)


@pytest.mark.parametrize(("given", "expected"), [("3", 3), ("10%", "10%"), ("100%", "100%"), (" 25 ", 25)])
@pytest.mark.parametrize("mode", ["flannel-overlay", "vcn-native"])
def test_calico_node_max_unavailable_sets_only_calico_nodes_rolling_update(mode: str, given: str,
                                                                            expected: int | str) -> None:
    """Unset, calico-node rolls one node at a time as upstream ships it; set, only its maxUnavailable changes (a count
    as a number, a share as a percentage string), its pod template stays byte-identical, so pods do not restart."""
    plain = _named(_render("3.32.0", mode, "oracle-linux-8"), "DaemonSet", "calico-node")
    assert plain["spec"]["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}
    faster = _render("3.32.0", mode, "oracle-linux-8", calico_node_max_unavailable=given)
    ds = _named(faster, "DaemonSet", "calico-node")
    assert ds["spec"]["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": expected}}
    assert ds["spec"]["template"] == plain["spec"]["template"]
    others = [o for o in faster if not _is_calico_node(o)]
    assert others == [o for o in _render("3.32.0", mode, "oracle-linux-8") if not _is_calico_node(o)]


@pytest.mark.parametrize("bad", ["0", "0%", "101%", "-1", "ten", "1.5", "5 %", ""])
def test_bad_calico_node_max_unavailable_is_refused(bad: str) -> None:
    """A value that is not a count of 1 or more or a percentage of 1-100 is refused naming it, before any fetch; a
    valid one renders."""
    rendered = _render("3.32.0", "vcn-native", "oracle-linux-8", calico_node_max_unavailable="2")
    assert _named(rendered, "DaemonSet", "calico-node")["spec"]["updateStrategy"]["rollingUpdate"][
        "maxUnavailable"] == 2
    with pytest.raises(ConfigurationError, match=rf"calico_node_max_unavailable {bad!r} is not a node count"):
        render("3.32.0", "vcn-native", "oracle-linux-8", calico_node_max_unavailable=bad,
               fetch_options=FetchOptions(offline=True, mirror="/nonexistent"))


def test_an_upstream_calico_node_without_a_rolling_update_fails_loudly() -> None:
    """The same manifest renders with maxUnavailable; with calico-node set to OnDelete upstream, the edit fails naming
    the field instead of deploying a manifest without it."""
    options = TransformOptions(network_type="vcn-native", node_os="oracle-linux-8", calico_node_max_unavailable="10%",
                               version="3.28.0")
    edited = transform(parse_manifest(_without(lambda ds: None)), options)
    assert _named([dict(o) for o in edited], "DaemonSet", "calico-node")["spec"]["updateStrategy"][
        "rollingUpdate"]["maxUnavailable"] == "10%"
    changed = parse_manifest(_without(lambda ds: ds["spec"].__setitem__("updateStrategy", {"type": "OnDelete"})))
    with pytest.raises(ManifestShapeError, match=r"spec.updateStrategy is not a RollingUpdate"):
        transform(changed, options)
