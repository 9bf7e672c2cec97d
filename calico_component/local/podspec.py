"""What a kubelet derives from a live Pod before it starts a container: pure functions, no I/O and no pulumi.

The local dataplane node (``calico_component.local.dataplane``) runs Calico with exactly what these
functions compute from the Pod and ConfigMaps the API server holds: the container's environment
(every ``value``, ``valueFrom`` and ``envFrom`` resolved), the variables the kubelet and the
calico/node image add, the binaries' release from the image tag, and the interface name of a
pod's host-side veth.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: Raw Kubernetes objects as the API server returns them (JSON, camelCase).
Obj = Mapping[str, Any]


class PodSpecError(ValueError):
    """A pod cannot be started as it stands (what a kubelet reports as CreateContainerConfigError)."""


def container(pod: Obj, name: str | None = None) -> Obj:
    """The pod's container called ``name`` (an init container too), or its first container."""
    containers: Sequence[Obj] = pod["spec"]["containers"]
    if name is None:
        return containers[0]
    candidates: list[Obj] = [*(pod["spec"].get("initContainers") or []), *containers]
    for found in candidates:
        if found["name"] == name:
            return found
    raise PodSpecError(f"pod {pod['metadata']['name']} has no container {name!r}")


def has_init_container(pod: Obj, name: str) -> bool:
    return any(c["name"] == name for c in pod["spec"].get("initContainers") or [])


_FIELD_PATHS = {
    "metadata.name": lambda pod: pod["metadata"]["name"],
    "metadata.namespace": lambda pod: pod["metadata"].get("namespace", "default"),
    "metadata.uid": lambda pod: pod["metadata"].get("uid", ""),
    "spec.nodeName": lambda pod: pod["spec"].get("nodeName", ""),
    "spec.serviceAccountName": lambda pod: pod["spec"].get("serviceAccountName", "default"),
    "status.hostIP": lambda pod: (pod.get("status") or {}).get("hostIP", ""),
    "status.podIP": lambda pod: (pod.get("status") or {}).get("podIP", ""),
}
_MAP_FIELD = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")


def field_ref(pod: Obj, path: str) -> str:
    """The value of a ``fieldRef`` (the Downward API) for ``pod``."""
    if path in _FIELD_PATHS:
        return str(_FIELD_PATHS[path](pod))
    match = _MAP_FIELD.match(path)
    if match:
        return str((pod["metadata"].get(match[1]) or {}).get(match[2], ""))
    raise PodSpecError(f"fieldRef {path!r} is not one the local node resolves (supported: {', '.join(_FIELD_PATHS)}, "
                       "metadata.labels['...'], metadata.annotations['...'])")


def _config_map_value(ref: Obj, config_maps: Mapping[str, Mapping[str, str]], what: str) -> str | None:
    data = config_maps.get(ref["name"])
    optional = bool(ref.get("optional"))
    if data is None or ref["key"] not in data:
        if optional:
            return None
        missing = f"ConfigMap {ref['name']!r}" if data is None else f"key {ref['key']!r} in ConfigMap {ref['name']!r}"
        raise PodSpecError(f"{what}: {missing} does not exist (a kubelet would not start the container)")
    return data[ref["key"]]


def _value_from(pod: Obj, source: Obj, config_maps: Mapping[str, Mapping[str, str]], what: str) -> str | None:
    if "fieldRef" in source:
        return field_ref(pod, source["fieldRef"]["fieldPath"])
    if "configMapKeyRef" in source:
        return _config_map_value(source["configMapKeyRef"], config_maps, what)
    raise PodSpecError(f"{what}: valueFrom {sorted(source)} is not resolved by the local node (fieldRef and "
                       "configMapKeyRef are)")


_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)|\$\$")


def expand(value: str, env: Mapping[str, str]) -> str:
    """The kubelet's ``$(VAR)`` expansion: a defined variable is substituted, ``$$`` escapes, anything else stays."""
    def substitute(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        return env.get(match[1], match[0])
    return _REFERENCE.sub(substitute, value)


def _env_from(source: Obj, config_maps: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """One ``envFrom`` entry: every key of a ConfigMap (a missing optional one adds nothing)."""
    if "configMapRef" not in source:
        raise PodSpecError(f"envFrom {sorted(source)} is not resolved by the local node (configMapRef is)")
    ref = source["configMapRef"]
    data = config_maps.get(ref["name"])
    if data is None:
        if ref.get("optional"):
            return {}
        raise PodSpecError(f"envFrom: ConfigMap {ref['name']!r} does not exist (a kubelet would not start the container)")
    prefix = source.get("prefix", "")
    return {prefix + key: value for key, value in data.items()}


def resolve_env(pod: Obj, config_maps: Mapping[str, Mapping[str, str]], container_name: str | None = None) -> dict[str, str]:
    """A container's environment as a kubelet builds it: ``envFrom`` first, then ``env`` in order (later wins),
    ``valueFrom`` resolved against the pod and ``config_maps`` (name -> data), ``$(VAR)`` references expanded."""
    spec = container(pod, container_name)
    env: dict[str, str] = {}
    for source in spec.get("envFrom") or []:
        env.update(_env_from(source, config_maps))
    for entry in spec.get("env") or []:
        what = f"env {entry['name']} of pod {pod['metadata']['name']}"
        if "valueFrom" in entry:
            value = _value_from(pod, entry["valueFrom"], config_maps, what)
            if value is not None:
                env[entry["name"]] = value
        else:
            env[entry["name"]] = expand(str(entry.get("value", "")), env)
    return env


def config_maps_referenced(pod: Obj, container_name: str | None = None) -> list[str]:
    """Names of the ConfigMaps a container's environment reads (so only those are fetched)."""
    spec = container(pod, container_name)
    names = [source["configMapRef"]["name"] for source in spec.get("envFrom") or [] if "configMapRef" in source]
    for entry in spec.get("env") or []:
        ref = (entry.get("valueFrom") or {}).get("configMapKeyRef")
        if ref:
            names.append(ref["name"])
    return sorted(set(names))


def in_cluster_env(api_host: str, api_port: int) -> dict[str, str]:
    """What a kubelet adds to every container: where the API server is (here, the node's own forwarder to it)."""
    return {"KUBERNETES_SERVICE_HOST": api_host, "KUBERNETES_SERVICE_PORT": str(api_port),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(api_port)}


def felix_service_env(env: Mapping[str, str]) -> dict[str, str]:
    """What calico/node's runit script for Felix exports before ``calico-node -felix``.

    Felix does not read NODENAME or DATASTORE_TYPE, so the image copies them to FELIX_FELIXHOSTNAME and
    FELIX_DATASTORETYPE (the etcd settings are copied too; empty in the Kubernetes datastore mode OKE uses).
    """
    extra = {f"FELIX_{felix}": env.get(node, "") for felix, node in (
        ("ETCDADDR", "ETCD_AUTHORITY"), ("ETCDENDPOINTS", "ETCD_ENDPOINTS"), ("ETCDSCHEME", "ETCD_SCHEME"),
        ("ETCDCAFILE", "ETCD_CA_CERT_FILE"), ("ETCDKEYFILE", "ETCD_KEY_FILE"), ("ETCDCERTFILE", "ETCD_CERT_FILE"))}
    if env.get("NODENAME"):
        extra["FELIX_FELIXHOSTNAME"] = env["NODENAME"]
    if env.get("DATASTORE_TYPE"):
        extra["FELIX_DATASTORETYPE"] = env["DATASTORE_TYPE"]
    return {**env, **extra}


@dataclass(frozen=True)
class NodeServices:
    """What calico/node's ``rc.local`` runs after ``calico-node -startup``: each a ``calico-node`` flag."""

    long_running: tuple[str, ...]
    #: Services the image would run that the local node does not (BIRD and confd: BGP, not Go, not built here).
    not_run: tuple[str, ...]


def node_services(env: Mapping[str, str], release: str) -> NodeServices:
    """The runit services calico/node's ``rc.local`` enables for ``env`` in ``release`` (its decisions, in its order).

    3.30 runs each helper as its own service; 3.31 adds ``-complete-startup`` (marks the node's network available once
    Calico is ready); 3.32 folds every helper into one ``-node-services`` process beside Felix.
    """
    backend = env.get("CALICO_NETWORKING_BACKEND", "bird")
    felix = () if env.get("CALICO_DISABLE_FELIX") else ("-felix",)
    not_run = () if backend in ("none", "vxlan") else ("bird", "bird6", "confd")
    if release_tuple(release) >= (3, 32):
        return NodeServices(("-node-services", *felix), not_run)
    services: list[str] = ["-complete-startup"] if release_tuple(release) >= (3, 31) else []
    services += felix
    if backend != "none":
        services.append("-monitor-addresses")
    services += ["-allocate-tunnel-addrs", "-status-reporter"]
    if env.get("CALICO_MANAGE_CNI") != "false":
        services.append("-monitor-token")
    return NodeServices(tuple(services), not_run)


def release_tuple(release: str) -> tuple[int, ...]:
    """``v3.31.5`` -> (3, 31, 5)."""
    return tuple(int(part) for part in release.lstrip("v").split("."))


_TAG = re.compile(r":(v\d+\.\d+\.\d+)(?:@.*)?$")


def image_release(image: str) -> str | None:
    """The Calico release an image runs (``quay.io/calico/node:v3.32.0`` -> ``v3.32.0``), None without a tag."""
    match = _TAG.search(image)
    return match[1] if match else None


def image_registry(image: str) -> str:
    """The registry part of an image reference (``quay.io`` in ``quay.io/calico/node:v3.32.0``)."""
    return image.split("/", 1)[0] if "/" in image else "docker.io"


def is_calico_node(pod: Obj) -> bool:
    """Whether ``pod`` is one of the calico-node DaemonSet's pods (its first container runs calico/node)."""
    image = str(container(pod).get("image", ""))
    return "/calico/node:" in image or image.startswith("calico/node:")


def veth_name(prefix: str, namespace: str, pod: str) -> str:
    """A pod's host-side interface as Calico computes it: the prefix, then 11 hex digits of sha1("<ns>.<pod>").

    Felix looks for a workload's interface under this name with ``FELIX_INTERFACEPREFIX``'s first entry.
    The local node assumes the OCI VCN-native CNI names its host interfaces the same way with prefix ``oci``
    (Oracle's edit sets FELIX_INTERFACEPREFIX=oci); that naming is not verified against a real OKE node.
    """
    digest = hashlib.sha1(f"{namespace}.{pod}".encode()).hexdigest()
    return f"{prefix}{digest[:11]}"


def interface_prefix(env: Mapping[str, str]) -> str:
    """The first entry of FELIX_INTERFACEPREFIX (Felix's default: ``cali``)."""
    return (env.get("FELIX_INTERFACEPREFIX") or "cali").split(",")[0]


def health_endpoint(env: Mapping[str, str]) -> tuple[str, int]:
    """Where Felix serves ``/readiness`` (FELIX_HEALTHHOST, FELIX_HEALTHPORT; defaults localhost:9099)."""
    return env.get("FELIX_HEALTHHOST") or "localhost", int(env.get("FELIX_HEALTHPORT") or 9099)


def tcp_ports(pod: Obj) -> list[int]:
    """Every TCP ``containerPort`` the pod declares (what the local node's stand-in containers listen on)."""
    ports = {int(p["containerPort"]) for c in pod["spec"]["containers"] for p in c.get("ports") or []
             if p.get("protocol", "TCP") == "TCP"}
    return sorted(ports)


#: The init container of calico-node that installs Calico's CNI plugin and its configuration on the node.
INSTALL_CNI = "install-cni"


def cni_conflist(template: str, node: str, mtu: str, kubeconfig: str) -> dict[str, Any]:
    """``cni_network_config`` with its placeholders filled as Calico's install-cni fills them, parsed.

    A placeholder left over (a template this does not know) or a template that is not JSON is an error
    naming it: a half-filled CNI configuration must never be written.
    """
    import json

    text = (template.replace("__KUBERNETES_NODE_NAME__", node).replace("__CNI_MTU__", mtu or "0")
            .replace("__KUBECONFIG_FILEPATH__", kubeconfig))
    left = sorted(set(re.findall(r"__[A-Z0-9_]+__", text)))
    if left:
        raise PodSpecError(f"cni_network_config has placeholders the local node does not fill: {', '.join(left)}")
    try:
        conflist: dict[str, Any] = json.loads(text)
    except ValueError as exc:
        raise PodSpecError(f"cni_network_config is not JSON once filled: {exc}") from None
    if not conflist.get("plugins") or conflist["plugins"][0].get("type") != "calico":
        raise PodSpecError("cni_network_config's first plugin is not Calico's (type: calico)")
    return conflist


def cni_plugin_conf(conflist: Mapping[str, Any]) -> dict[str, Any]:
    """The network configuration a runtime hands the conflist's first plugin (Calico's): it, plus the list's
    ``cniVersion`` and ``name``. (The chained ``portmap`` and ``bandwidth`` plugins are not run here.)"""
    return {**conflist["plugins"][0], "cniVersion": conflist["cniVersion"], "name": conflist["name"]}


def cni_result_address(result: Mapping[str, Any]) -> str:
    """The pod's IPv4 address from a CNI ADD result (``ips[].address`` is a CIDR)."""
    for ip in result.get("ips") or []:
        address = str(ip.get("address", "")).split("/")[0]
        if address and ":" not in address:
            return address
    raise PodSpecError(f"the CNI result has no IPv4 address: {dict(result)}")


def kubeconfig_text(server: str, ca_pem: bytes, token: str) -> str:
    """The kubeconfig install-cni writes for the CNI plugin: the API server, its CA, a ServiceAccount token."""
    import base64

    ca = base64.b64encode(ca_pem).decode()
    return (f"apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: {server}\n"
            f"    certificate-authority-data: {ca}\nusers:\n- name: calico\n  user:\n    token: {token}\n"
            "contexts:\n- name: calico-context\n  context:\n    cluster: local\n    user: calico\n"
            "current-context: calico-context\n")
