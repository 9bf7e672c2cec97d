"""Pure manifest transforms: one function per documented edit, composed per OKE network type.

Image edits (registry checks, the opt-in mirror) live in ``images``. Every function takes a
manifest (a list of objects) and returns a new list. The input is never mutated: an edited
object is a deep copy, untouched objects are shared with the input and must be treated as
read-only. Applying a composed transform to its own output returns an equal manifest (no
double edits).
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigurationError, ManifestShapeError, shape_error
from .images import require_qualified_images, rewrite_images, validate_registry
from .parsing import K8sObject, Manifest, describe
from .releases import NetworkType, NodeOS, validate_network_type, validate_node_os

CALICO_NODE_NAMESPACE = "kube-system"
CALICO_NODE_NAME = "calico-node"

#: Env vars section B step 3.6 adds to the calico-node container, in the document's order.
VCN_NATIVE_ENV: tuple[tuple[str, str], ...] = (
    ("FELIX_INTERFACEPREFIX", "oci"),
    ("NO_DEFAULT_POOLS", "true"),
    ("FELIX_CHAININSERTMODE", "Append"),
    ("FELIX_IPTABLESMANGLEALLOWACTION", "Return"),
)
NFT_ENV: tuple[str, str] = ("FELIX_IPTABLESBACKEND", "NFT")
VCN_NATIVE_REMOVED_VOLUMES: tuple[str, ...] = ("cni-bin-dir", "cni-net-dir", "cni-log-dir")
VCN_NATIVE_REMOVED_MOUNTS: tuple[str, ...] = ("cni-net-dir", "cni-log-dir")
TYPHA_SERVICE_ENV = "FELIX_TYPHAK8SSERVICENAME"

#: Node images whose iptables uses the nftables backend. Oracle documents the NFT setting
#: for Oracle Linux 8; Oracle Linux 9 ships the same iptables-nft backend only, so it gets
#: the same setting. Oracle Linux 7 uses legacy iptables and gets nothing.
NFT_NODE_OSES: frozenset[str] = frozenset({"oracle-linux-8", "oracle-linux-9"})

Step = Callable[[Manifest], Manifest]


@dataclass(frozen=True)
class TransformOptions:
    """What to apply: the mode, the worker node OS and the opt-in extras (off by default)."""

    network_type: NetworkType
    node_os: NodeOS
    image_registry: str | None = None
    pod_cidr: str | None = None
    typha_replicas: int | None = None
    #: calico-node's rolling update: how many nodes (``"3"``) or what share of them (``"10%"``) may be without a
    #: ready calico-node at once; None keeps upstream's 1.
    calico_node_max_unavailable: str | None = None
    #: flannel-overlay from calico-typha.yaml (a calico-typha Deployment exists to scale).
    typha: bool = False
    version: str = "unknown"  # only used in error messages

    def __post_init__(self) -> None:
        validate_network_type(self.network_type)
        validate_node_os(self.node_os)
        if self.image_registry is not None:
            validate_registry(self.image_registry)
        if self.pod_cidr is not None:
            validate_pod_cidr(self.pod_cidr)
            if self.network_type != "flannel-overlay":
                raise ConfigurationError(
                    f"pod_cidr {self.pod_cidr!r} applies only to flannel-overlay; in vcn-native mode pods take "
                    "VCN addresses and Calico creates no IP pools (NO_DEFAULT_POOLS=true). Remove pod_cidr."
                )
        if self.calico_node_max_unavailable is not None:
            validate_max_unavailable(self.calico_node_max_unavailable)
        if self.typha and self.network_type != "flannel-overlay":
            raise ConfigurationError(
                "typha applies only to flannel-overlay (calico-typha.yaml); vcn-native's calico-policy-only.yaml "
                "always includes calico-typha"
            )
        if self.typha_replicas is not None:
            if isinstance(self.typha_replicas, bool) or not isinstance(self.typha_replicas, int) or not (
                0 <= self.typha_replicas <= 100
            ):
                raise ConfigurationError(f"typha_replicas must be a whole number from 0 to 100, got {self.typha_replicas!r}")
            if self.network_type != "vcn-native" and not self.typha:
                raise ConfigurationError(
                    f"typha_replicas={self.typha_replicas} needs Typha: flannel-overlay without it uses calico.yaml, "
                    "which has no calico-typha Deployment. Turn Typha on (typha='on' / --typha) or remove typha_replicas."
                )


_MAX_UNAVAILABLE_RE = re.compile(r"^([1-9][0-9]{0,5})(%?)$")


def validate_max_unavailable(value: str) -> int | str:
    """``"3"`` -> 3 nodes, ``"10%"`` -> "10%" of them (1-100%): the form a DaemonSet's ``maxUnavailable`` takes."""
    found = _MAX_UNAVAILABLE_RE.match(value.strip()) if isinstance(value, str) else None
    if found is None or (found[2] and int(found[1]) > 100):
        raise ConfigurationError(
            f"calico_node_max_unavailable {value!r} is not a node count like '3' or a percentage like '10%' (1 or "
            "more, at most 100%); leave it unset for upstream's one node at a time"
        )
    return f"{found[1]}%" if found[2] else int(found[1])


def validate_pod_cidr(cidr: str) -> str:
    """An IPv4 network such as ``10.244.0.0/16``."""
    try:
        return str(ipaddress.IPv4Network(cidr, strict=True))
    except ValueError as exc:
        raise ConfigurationError(
            f"pod CIDR {cidr!r} is not an IPv4 network like '10.244.0.0/16' ({exc}); use the cluster's pods CIDR"
        ) from exc


def is_calico_node(obj: Mapping[str, Any]) -> bool:
    """True for calico-node's DaemonSet (kube-system/calico-node)."""
    meta = obj.get("metadata") or {}
    return bool(
        obj.get("kind") == "DaemonSet"
        and meta.get("name") == CALICO_NODE_NAME
        and meta.get("namespace", CALICO_NODE_NAMESPACE) == CALICO_NODE_NAMESPACE
    )


def find_calico_node(manifest: Sequence[Mapping[str, Any]], version: str) -> int:
    """The index of calico-node's DaemonSet; a manifest without it is the wrong shape for ``version``."""
    for i, obj in enumerate(manifest):
        if is_calico_node(obj):
            return i
    raise shape_error(version, f"DaemonSet {CALICO_NODE_NAMESPACE}/{CALICO_NODE_NAME}", "the object", "is missing")


def _pod_spec(obj: K8sObject, version: str) -> dict[str, Any]:
    spec = obj.get("spec")
    template = spec.get("template") if isinstance(spec, dict) else None
    pod = template.get("spec") if isinstance(template, dict) else None
    if not isinstance(pod, dict):
        raise shape_error(version, describe(obj), "spec.template.spec", "is missing")
    return pod


def _container(pod: dict[str, Any], obj: K8sObject, version: str) -> dict[str, Any]:
    for c in pod.get("containers") or []:
        if isinstance(c, dict) and c.get("name") == CALICO_NODE_NAME:
            return c
    raise shape_error(version, describe(obj), f"spec.template.spec.containers[name={CALICO_NODE_NAME}]", "is missing")


def edit_calico_node(
    manifest: Manifest, version: str, edit: Callable[[dict[str, Any], dict[str, Any], str], None]
) -> Manifest:
    """Return a new manifest whose calico-node DaemonSet is a copy edited by ``edit(pod, container, where)``."""
    index = find_calico_node(manifest, version)
    ds = copy.deepcopy(manifest[index])
    pod = _pod_spec(ds, version)
    container = _container(pod, ds, version)
    edit(pod, container, describe(ds))
    out = list(manifest)
    out[index] = ds
    return out


def _names(items: Any) -> list[str]:
    return [str(i.get("name")) for i in items or [] if isinstance(i, dict)]


def _drop_named(holder: dict[str, Any], key: str, wanted: tuple[str, ...], version: str, where: str, field: str) -> None:
    """Remove the items of ``holder[key]`` named in ``wanted``; each must be there."""
    present = _names(holder.get(key))
    for n in wanted:
        if n not in present:
            raise shape_error(version, where, f"{field}[{n}]", "is missing")
    holder[key] = [i for i in holder[key] if i.get("name") not in wanted]


# --- one function per documented edit -----------------------------------------------------


def remove_init_containers(manifest: Manifest, version: str = "unknown") -> Manifest:
    """B.3.1: drop ``spec.template.spec.initContainers`` of calico-node entirely."""

    def edit(pod: dict[str, Any], _c: dict[str, Any], where: str) -> None:
        if "initContainers" not in pod:
            raise shape_error(version, where, "spec.template.spec.initContainers", "is missing")
        del pod["initContainers"]

    return edit_calico_node(manifest, version, edit)


def remove_env(manifest: Manifest, name: str, version: str = "unknown") -> Manifest:
    """B.3.2: drop one env var from the calico-node container."""

    def edit(_p: dict[str, Any], c: dict[str, Any], where: str) -> None:
        _drop_named(c, "env", (name,), version, where, "containers[calico-node].env")

    return edit_calico_node(manifest, version, edit)


def remove_env_from(manifest: Manifest, version: str = "unknown") -> Manifest:
    """B.3.3: drop the container's ``envFrom`` (optional ConfigMap kubernetes-services-endpoint)."""

    def edit(_p: dict[str, Any], c: dict[str, Any], where: str) -> None:
        if "envFrom" not in c:
            raise shape_error(version, where, "containers[calico-node].envFrom", "is missing")
        del c["envFrom"]

    return edit_calico_node(manifest, version, edit)


def remove_volumes(manifest: Manifest, names: Iterable[str], version: str = "unknown") -> Manifest:
    """B.3.4: drop named pod volumes; every one must exist."""
    wanted = tuple(names)

    def edit(pod: dict[str, Any], _c: dict[str, Any], where: str) -> None:
        _drop_named(pod, "volumes", wanted, version, where, "spec.template.spec.volumes")

    return edit_calico_node(manifest, version, edit)


def remove_volume_mounts(manifest: Manifest, names: Iterable[str], version: str = "unknown") -> Manifest:
    """B.3.5: drop named volume mounts of the calico-node container; every one must exist."""
    wanted = tuple(names)

    def edit(_p: dict[str, Any], c: dict[str, Any], where: str) -> None:
        _drop_named(c, "volumeMounts", wanted, version, where, "containers[calico-node].volumeMounts")

    return edit_calico_node(manifest, version, edit)


def add_env(manifest: Manifest, pairs: Iterable[tuple[str, str]], version: str = "unknown") -> Manifest:
    """A.5 / B.3.6: append env vars to calico-node. One already set to the same value is left alone;
    one set to a different value is a conflict (ManifestShapeError)."""
    wanted = tuple(pairs)

    def edit(_p: dict[str, Any], c: dict[str, Any], where: str) -> None:
        env = list(c.get("env") or [])
        existing = {e.get("name"): e for e in env if isinstance(e, dict)}
        for name, value in wanted:
            current = existing.get(name)
            if current is None:
                item = {"name": name, "value": value}
                env.append(item)
                existing[name] = item
            elif current.get("value") != value or "valueFrom" in current:
                raise shape_error(
                    version, where, f"containers[calico-node].env[{name}]",
                    f"is already set to {current.get('value', current.get('valueFrom'))!r}, not {value!r}",
                )
        c["env"] = env

    return edit_calico_node(manifest, version, edit)


def set_replicas(manifest: Manifest, namespace: str, name: str, replicas: int, version: str = "unknown") -> Manifest:
    """Opt-in: set ``spec.replicas`` of one Deployment (e.g. calico-typha for larger clusters)."""
    for i, obj in enumerate(manifest):
        meta = obj.get("metadata") or {}
        if obj.get("kind") == "Deployment" and meta.get("name") == name and meta.get("namespace") == namespace:
            new = copy.deepcopy(obj)
            spec = new.get("spec")
            if not isinstance(spec, dict):
                raise shape_error(version, describe(obj), "spec", "is missing")
            spec["replicas"] = replicas
            out = list(manifest)
            out[i] = new
            return out
    raise shape_error(version, f"Deployment {namespace}/{name}", "the object", "is missing")


def set_max_unavailable(manifest: Manifest, value: str, version: str = "unknown") -> Manifest:
    """Opt-in: calico-node's ``spec.updateStrategy.rollingUpdate.maxUnavailable`` (upstream: 1)."""
    index = find_calico_node(manifest, version)
    ds = copy.deepcopy(manifest[index])
    strategy = (ds.get("spec") or {}).get("updateStrategy")
    if not isinstance(strategy, dict) or strategy.get("type") != "RollingUpdate" \
            or not isinstance(strategy.get("rollingUpdate"), dict):
        raise shape_error(version, describe(ds), "spec.updateStrategy", "is not a RollingUpdate with rollingUpdate settings")
    strategy["rollingUpdate"]["maxUnavailable"] = validate_max_unavailable(value)
    out = list(manifest)
    out[index] = ds
    return out


# --- composition ----------------------------------------------------------------------------


def _vcn_native_done(manifest: Manifest, version: str) -> bool:
    """True when section B's edits are already in the manifest (so they must not run again)."""
    ds = manifest[find_calico_node(manifest, version)]
    pod = _pod_spec(ds, version)
    c = _container(pod, ds, version)
    env = {e.get("name"): e.get("value") for e in c.get("env") or [] if isinstance(e, dict)}
    if env.get("FELIX_INTERFACEPREFIX") != "oci":
        return False
    leftovers = []
    if "initContainers" in pod:
        leftovers.append("initContainers")
    if TYPHA_SERVICE_ENV in env:
        leftovers.append(f"env {TYPHA_SERVICE_ENV}")
    if "envFrom" in c:
        leftovers.append("envFrom")
    leftovers += [f"volume {v}" for v in VCN_NATIVE_REMOVED_VOLUMES if v in _names(pod.get("volumes"))]
    leftovers += [f"volumeMount {m}" for m in VCN_NATIVE_REMOVED_MOUNTS if m in _names(c.get("volumeMounts"))]
    if leftovers:
        raise ManifestShapeError(
            f"Calico {version} manifest: {describe(ds)} is partly transformed for vcn-native "
            f"(FELIX_INTERFACEPREFIX=oci is set but {', '.join(leftovers)} remain); start from the upstream file"
        )
    return True


def vcn_native_steps(options: TransformOptions) -> list[Step]:
    """Section B.3 in the document's order, plus NFT for nodes that need it."""
    v = options.version
    env = VCN_NATIVE_ENV + ((NFT_ENV,) if options.node_os in NFT_NODE_OSES else ())
    return [
        lambda m: remove_init_containers(m, v),
        lambda m: remove_env(m, TYPHA_SERVICE_ENV, v),
        lambda m: remove_env_from(m, v),
        lambda m: remove_volumes(m, VCN_NATIVE_REMOVED_VOLUMES, v),
        lambda m: remove_volume_mounts(m, VCN_NATIVE_REMOVED_MOUNTS, v),
        lambda m: add_env(m, env, v),
    ]


def flannel_overlay_steps(options: TransformOptions) -> list[Step]:
    """Section A.5 (NFT for Oracle Linux 8+) plus the opt-in pod CIDR."""
    v = options.version
    env: list[tuple[str, str]] = []
    if options.pod_cidr is not None:
        env.append(("CALICO_IPV4POOL_CIDR", validate_pod_cidr(options.pod_cidr)))
    if options.node_os in NFT_NODE_OSES:
        env.append(NFT_ENV)
    if not env:
        return []
    return [lambda m: add_env(m, env, v)]


def transform(manifest: Manifest, options: TransformOptions) -> Manifest:
    """Apply every edit the options call for; the result of a failed step is never returned."""
    steps: list[Step]
    if options.network_type == "vcn-native":
        steps = vcn_native_steps(options)
        if _vcn_native_done(manifest, options.version):
            steps = steps[-1:]  # only the (idempotent) env additions remain meaningful
    else:
        find_calico_node(manifest, options.version)
        steps = flannel_overlay_steps(options)
    if options.typha_replicas is not None:
        replicas = options.typha_replicas
        steps.append(lambda m: set_replicas(m, CALICO_NODE_NAMESPACE, "calico-typha", replicas, options.version))
    if options.calico_node_max_unavailable is not None:
        unavailable = options.calico_node_max_unavailable
        steps.append(lambda m: set_max_unavailable(m, unavailable, options.version))
    if options.image_registry is not None:
        registry = options.image_registry
        steps.append(lambda m: rewrite_images(m, registry))
    steps.append(lambda m: require_qualified_images(m, options.version))
    result = manifest
    for step in steps:
        result = step(result)
    return list(result)


def template_digest(objects: Sequence[Mapping[str, Any]], version: str) -> str:
    """SHA-256 of calico-node's pod template as rendered: it changes exactly when an ``up`` rolls calico-node."""
    template = objects[find_calico_node(objects, version)].get("spec", {}).get("template", {})
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()
