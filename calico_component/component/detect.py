"""Read-only OKE lookups through pulumi-oci invokes (they run during preview): cluster, node pools, images."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pulumi

from ..errors import ConfigurationError, GuardError
from ..manifest.releases import OKE_CNI_TYPE, NetworkType, NodeOS

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


def lookup_cluster(cluster_id: str, parent: pulumi.Resource) -> ClusterFacts:
    import pulumi_oci as oci

    c = oci.containerengine.get_cluster(cluster_id=cluster_id, opts=pulumi.InvokeOptions(parent=parent))
    pod_networks: list[Any] = list(c.cluster_pod_network_options or [])
    cni = pod_networks[0].cni_type if pod_networks else None
    return ClusterFacts(cluster_id, c.compartment_id, cni, c.kubernetes_version, _pods_cidr(c))


def _pods_cidr(cluster: Any) -> str | None:
    """``options[0].kubernetes_network_configs[0].pods_cidr`` of a get_cluster result, if the cluster has one."""
    for option in cluster.options or []:
        for network in option.kubernetes_network_configs or []:
            if network.pods_cidr:
                return str(network.pods_cidr)
    return None


def lookup_node_pools(cluster: ClusterFacts, parent: pulumi.Resource) -> NodePoolFacts:
    import pulumi_oci as oci

    invoke_opts = pulumi.InvokeOptions(parent=parent)
    pools = oci.containerengine.get_node_pools(
        compartment_id=cluster.compartment_id, cluster_id=cluster.cluster_id, opts=invoke_opts
    ).node_pools or []
    count = 0
    images: list[str] = []
    for p in pools:
        if (p.state or "") in _GONE_POOL_STATES:
            continue
        details = list(p.node_config_details or [])
        size = details[0].size if details and details[0].size is not None else len(p.nodes or [])
        count += int(size or 0)
        name = p.node_image_name or ""
        for source in p.node_sources or []:
            name = name or (source.source_name or "")
        if not name:
            for source_details in p.node_source_details or []:
                if source_details.image_id:
                    img = oci.core.get_image(image_id=source_details.image_id, opts=invoke_opts)
                    name = f"{img.operating_system} {img.operating_system_version}"
        if name:
            images.append(name)
    virtual = oci.containerengine.get_virtual_node_pools(
        compartment_id=cluster.compartment_id, cluster_id=cluster.cluster_id, opts=invoke_opts
    ).virtual_node_pools or []
    virtual_names = tuple(v.display_name or v.id for v in virtual if (v.state or "") not in _GONE_POOL_STATES)
    return NodePoolFacts(count, tuple(images), virtual_names)


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
