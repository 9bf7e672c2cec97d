"""Pure decisions beyond Oracle's document: Typha on or off, and the pod CIDR Calico's first IP pool gets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from ..errors import ConfigurationError
from .releases import NetworkType, one_of

TyphaMode = Literal["auto", "on", "off"]
TYPHA_MODES: tuple[TyphaMode, ...] = get_args(TyphaMode)

#: Calico's install docs switch to calico-typha.yaml for clusters of more than 50 nodes (Kubernetes API
#: datastore); the manifest's own comment: recommended above 50 nodes, essential above 100.
TYPHA_NODE_THRESHOLD = 50

#: What calico-node creates as its default IPv4 pool when CALICO_IPV4POOL_CIDR is not set.
CALICO_DEFAULT_POOL_CIDR = "192.168.0.0/16"


@dataclass(frozen=True)
class TyphaChoice:
    """Whether Typha runs, whether that means deploying calico-typha.yaml, and why."""

    enabled: bool
    typha_manifest: bool
    reason: str


@dataclass(frozen=True)
class PodCidrChoice:
    """The pod CIDR for CALICO_IPV4POOL_CIDR (None: not set), where it came from, and a warning if any."""

    cidr: str | None
    source: Literal["pod_cidr", "cluster", "none"]
    warning: str | None = None


def validate_typha_mode(value: object) -> TyphaMode:
    """Return ``value`` as a TyphaMode or raise ConfigurationError naming the valid ones."""
    return one_of(value, TYPHA_MODES, "typha", f" (auto: on above {TYPHA_NODE_THRESHOLD} nodes)")


def choose_typha(
    mode: str, network_type: NetworkType, *, node_count: int | None, replicas: int | None
) -> TyphaChoice:
    """Decide Typha from the mode (validated here), the managed node count (None: unknown) and ``typha_replicas``.

    vcn-native always runs Typha: Oracle's procedure uses calico-policy-only.yaml, which has it.
    flannel-overlay runs it with ``on``, and with ``auto`` when ``typha_replicas`` is set or the
    managed node pools total more than 50 nodes.
    """
    typha = validate_typha_mode(mode)
    if network_type == "vcn-native":
        if typha == "off":
            raise ConfigurationError(
                "typha='off' applies only to flannel-overlay: in vcn-native, Oracle's procedure deploys "
                "calico-policy-only.yaml, which always has calico-typha. Remove typha (or use typha_replicas to scale it)."
            )
        return TyphaChoice(True, False, "vcn-native: calico-policy-only.yaml always runs calico-typha")
    if typha == "off":
        if replicas is not None:
            raise ConfigurationError(
                f"typha_replicas={replicas} needs Typha, but typha='off'; remove typha_replicas or set typha='on'"
            )
        return TyphaChoice(False, False, "typha='off'")
    if typha == "on":
        return TyphaChoice(True, True, "typha='on'")
    if replicas is not None:
        return TyphaChoice(True, True, f"typha='auto' and typha_replicas={replicas}")
    if node_count is None:
        return TyphaChoice(False, False, "typha='auto' without a known node count (no OKE cluster lookup): off")
    enabled = node_count > TYPHA_NODE_THRESHOLD
    relation = ">" if enabled else "<="
    return TyphaChoice(
        enabled, enabled, f"typha='auto': {node_count} managed node(s) {relation} {TYPHA_NODE_THRESHOLD}"
    )


def choose_pod_cidr(network_type: NetworkType, explicit: str | None, cluster_pods_cidr: str | None) -> PodCidrChoice:
    """flannel-overlay: an explicit ``pod_cidr`` wins, else the OKE cluster's pods CIDR, else nothing (with a warning)."""
    if explicit is not None:
        return PodCidrChoice(explicit, "pod_cidr")
    if network_type != "flannel-overlay":
        return PodCidrChoice(None, "none")
    if cluster_pods_cidr:
        return PodCidrChoice(cluster_pods_cidr, "cluster")
    return PodCidrChoice(
        None,
        "none",
        "the cluster's pod CIDR is unknown (no cluster_id OCID to read it from, and no pod_cidr), so Calico will "
        f"create its default IP pool {CALICO_DEFAULT_POOL_CIDR}, which collides with any VCN or on-premises network "
        "in that range. Set pod_cidr to the cluster's pods CIDR (OKE's default is 10.244.0.0/16), or pass "
        "cluster_id so it is read from the cluster.",
    )
