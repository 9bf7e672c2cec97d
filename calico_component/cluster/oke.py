"""What calico-oke reads from OKE, through the OCI SDK and the component's one OCI configuration (``oci_api``), at
preview: the cluster (CNI, Kubernetes version, pods CIDR, API endpoints), its node pools (nodes, images), its virtual
node pools, and the kubeconfig OKE serves for it. Plus the pure decisions made from them."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from ..errors import ConfigurationError, GuardError
from ..manifest.releases import OKE_CNI_TYPE, NetworkType, NodeOS
from .oci_api import OciSettings, Retry, call, client

_GONE_POOL_STATES = frozenset({"DELETED", "DELETING", "FAILED"})
_OS_RE = re.compile(r"oracle[-_ ]?linux[-_ ]?(\d+)", re.IGNORECASE)


@dataclass(frozen=True)
class ClusterFacts:
    """What the component needs to know about an OKE cluster."""

    cluster_id: str
    compartment_id: str
    cni_type: str | None
    kubernetes_version: str | None
    pods_cidr: str | None = None
    #: The API server's endpoints OKE reports (``host:port``: public, private, VCN hostname).
    endpoints: tuple[str, ...] = ()


@dataclass(frozen=True)
class NodePoolFacts:
    """Worker nodes and images of the cluster's managed node pools, and its virtual node pools."""

    node_count: int
    image_names: tuple[str, ...]
    virtual_node_pools: tuple[str, ...]


def network_type_from_cni(cni_type: str | None, cluster_id: str) -> NetworkType:
    """``FLANNEL_OVERLAY`` -> flannel-overlay, ``OCI_VCN_IP_NATIVE`` -> vcn-native."""
    for nt, cni in OKE_CNI_TYPE.items():
        if cni == cni_type:
            return nt
    raise ConfigurationError(
        f"cluster {cluster_id} reports CNI type {cni_type!r}, which calico-oke does not know; "
        "set network_type explicitly"
    )


def node_os_from_image(name: str) -> NodeOS | None:
    """``Oracle-Linux-8.10-2024.09.30-0-OKE-1.30.1-747`` -> oracle-linux-8; None when not Oracle Linux 7/8/9."""
    m = _OS_RE.search(name)
    if not m:
        return None
    major = m.group(1)
    if major in ("7", "8", "9"):
        return f"oracle-linux-{major}"  # type: ignore[return-value]
    return None


def node_os_from_pools(facts: NodePoolFacts, cluster_id: str) -> NodeOS:
    """The single node OS of all node pools; mixed or unknown images need an explicit node_os."""
    found = {node_os_from_image(n) for n in facts.image_names}
    if not facts.image_names:
        raise ConfigurationError(
            f"cannot derive node_os: cluster {cluster_id} has no node pools yet; set node_os explicitly "
            "(oracle-linux-7, oracle-linux-8 or oracle-linux-9)"
        )
    if None in found:
        unknown = [n for n in facts.image_names if node_os_from_image(n) is None]
        raise ConfigurationError(
            f"cannot derive node_os from node pool image(s) {', '.join(unknown)} of cluster {cluster_id}; "
            "set node_os explicitly"
        )
    if len(found) > 1:
        raise ConfigurationError(
            f"node pools of cluster {cluster_id} run different OS majors ({', '.join(sorted(str(f) for f in found))}); "
            "one Calico DaemonSet cannot serve both iptables backends: set node_os explicitly"
        )
    return found.pop()  # type: ignore[return-value]


#: How long the reads at preview may keep trying OCI (throttling, 5xx, no answer) before failing with the last error.
LOOKUP_SECONDS = 60.0


def _retry(pause: Callable[[float], None] = time.sleep) -> Retry:
    return Retry.within(LOOKUP_SECONDS, sleep=pause)


def read_cluster(settings: OciSettings, cluster_id: str) -> ClusterFacts:
    """GetCluster: compartment, CNI, Kubernetes version, pods CIDR and API endpoints of ``cluster_id``."""
    engine = client(settings, purpose=f"read OKE cluster {cluster_id}")
    c = call(f"reading OKE cluster {cluster_id}", lambda: engine.get_cluster(cluster_id), _retry()).data
    networks = list(c.cluster_pod_network_options or [])
    network = getattr(getattr(c, "options", None), "kubernetes_network_config", None)
    endpoints = getattr(c, "endpoints", None)
    found = [getattr(endpoints, key, None) for key in ("kubernetes", "public_endpoint", "private_endpoint",
                                                       "vcn_hostname_endpoint")] if endpoints else []
    return ClusterFacts(cluster_id, str(c.compartment_id), networks[0].cni_type if networks else None,
                        c.kubernetes_version, getattr(network, "pods_cidr", None) or None,
                        tuple(dict.fromkeys(str(e) for e in found if e)))


def _pool_size(engine: Any, pool: Any) -> int:
    """Nodes of one pool: its size as configured, else its quantity per subnet, else the nodes GetNodePool lists
    (ListNodePools gives no count for pools made without node_config_details)."""
    details = getattr(pool, "node_config_details", None)
    if details is not None and details.size is not None:
        return int(details.size)
    if pool.quantity_per_subnet:
        return int(pool.quantity_per_subnet) * len(pool.subnet_ids or [])
    full = call(f"reading OKE node pool {pool.id}", lambda: engine.get_node_pool(pool.id), _retry()).data
    return sum(1 for node in full.nodes or [] if (node.lifecycle_state or "") not in _GONE_POOL_STATES)


def _image_name(settings: OciSettings, pool: Any) -> str:
    name = str(pool.node_image_name or "") or str(getattr(pool.node_source, "source_name", "") or "")
    image_id = getattr(pool.node_source_details, "image_id", None) or getattr(pool.node_source, "image_id", None)
    if name or not image_id:
        return name
    compute = client(settings, "compute", purpose=f"read node image {image_id}")
    image = call(f"reading node image {image_id}", lambda: compute.get_image(image_id), _retry()).data
    return f"{image.operating_system} {image.operating_system_version}"


def read_node_pools(settings: OciSettings, cluster: ClusterFacts) -> NodePoolFacts:
    """ListNodePools and ListVirtualNodePools of the cluster: worker nodes, their images, virtual pools."""
    engine = client(settings, purpose=f"read the node pools of OKE cluster {cluster.cluster_id}")
    pools = call(f"listing the node pools of OKE cluster {cluster.cluster_id}", lambda: engine.list_node_pools(
        cluster.compartment_id, cluster_id=cluster.cluster_id), _retry()).data
    count, images = 0, []
    for pool in pools:
        if (pool.lifecycle_state or "") in _GONE_POOL_STATES:
            continue
        count += _pool_size(engine, pool)
        name = _image_name(settings, pool)
        if name:
            images.append(name)
    virtual = call(f"listing the virtual node pools of OKE cluster {cluster.cluster_id}",
                   lambda: engine.list_virtual_node_pools(cluster.compartment_id, cluster_id=cluster.cluster_id),
                   _retry()).data
    names = tuple(str(v.display_name or v.id) for v in virtual if (v.lifecycle_state or "") not in _GONE_POOL_STATES)
    return NodePoolFacts(count, tuple(images), names)


def kubeconfig(settings: OciSettings, cluster_id: str) -> str:
    """The kubeconfig OKE serves for ``cluster_id`` (CreateKubeconfig, token version 2.0.0), its token command made to
    authenticate as every other OCI call of the component does (``with_auth``)."""
    import oci

    engine = client(settings, purpose=f"get the kubeconfig of OKE cluster {cluster_id}")
    details = oci.container_engine.models.CreateClusterKubeconfigContentDetails(token_version="2.0.0")
    response = call(f"getting the kubeconfig of OKE cluster {cluster_id}",
                    lambda: engine.create_kubeconfig(cluster_id, create_cluster_kubeconfig_content_details=details),
                    _retry())
    data = response.data
    text = data.text if hasattr(data, "text") else data.content.decode() if hasattr(data, "content") else str(data)
    return with_auth(text, settings)


#: The flags `oci ce cluster generate-token` takes for each OCI setting, and the value each gets.
_TOKEN_FLAGS: tuple[tuple[str, Callable[[OciSettings], str | None]], ...] = (
    ("--auth", lambda s: s.auth if s.auth != "api_key" else None),
    ("--profile", lambda s: s.profile),
    ("--config-file", lambda s: s.config_file),
    ("--region", lambda s: s.region),
)


def with_auth(text: str, settings: OciSettings) -> str:
    """An OKE kubeconfig whose token command (``oci ce cluster generate-token``) authenticates as ``settings`` say:
    ``--auth instance_principal`` on an OCI runner, the same profile, config file and region as the lookups."""
    if not any(value_of(settings) is not None for _, value_of in _TOKEN_FLAGS):
        return text
    doc = yaml.safe_load(text)
    for user in doc.get("users") or []:
        plugin = (user.get("user") or {}).get("exec")
        if not isinstance(plugin, dict) or "generate-token" not in [str(a) for a in plugin.get("args") or []]:
            continue
        args = [str(a) for a in plugin.get("args") or []]
        for flag, value_of in _TOKEN_FLAGS:
            value = value_of(settings)
            if value is None:
                continue
            if flag in args:
                args[args.index(flag) + 1] = value
            else:
                args += [flag, value]
        plugin["args"] = args
    return str(yaml.safe_dump(doc, sort_keys=False))


def refuse_virtual_node_pools(facts: NodePoolFacts, cluster_id: str) -> None:
    if facts.virtual_node_pools:
        raise GuardError(
            f"cluster {cluster_id} has virtual node pool(s) {', '.join(facts.virtual_node_pools)}; Calico runs only "
            "on managed node pools, not on virtual nodes (Oracle's procedure). Use managed node pools, or do not "
            "install Calico on this cluster."
        )


def refuse_cni_mismatch(network_type: NetworkType, cluster: ClusterFacts) -> None:
    expected = OKE_CNI_TYPE[network_type]
    if cluster.cni_type is not None and cluster.cni_type != expected:
        raise GuardError(
            f"network_type {network_type!r} contradicts cluster {cluster.cluster_id}, whose CNI is "
            f"{cluster.cni_type}; use network_type={network_type_from_cni(cluster.cni_type, cluster.cluster_id)!r} "
            "or leave it unset to detect it"
        )
