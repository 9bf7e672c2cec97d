"""The inputs of the Calico component (``CalicoArgs``) and their validation, before any lookup or registration."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from ..cluster.flannel import DEFAULT_FLANNEL_ADDON_NAME
from ..cluster.oci_api import OCI_AUTH_METHODS
from ..errors import ConfigurationError
from ..manifest.plan import validate_typha_mode
from ..manifest.releases import validate_network_type, validate_node_os
from ..manifest.transforms import validate_max_unavailable


@dataclass(kw_only=True)
class CalicoArgs:
    """Inputs of :class:`Calico`. Everything but ``calico_version`` has a default.

    ``calico_version`` and ``network_type`` decide which objects exist, so they must be
    plain values (not Outputs); ``cluster_id`` and ``kubeconfig`` may be Outputs. Each field's
    docstring is also its description in the Pulumi package schema (``calico_component.component.inputs``).
    """

    calico_version: str
    """Calico release to install: one of the version table (`python -m calico_component versions`), or any X.Y.Z \
with `manifest_sha256`."""
    network_type: str | None = None
    """The cluster's CNI: `flannel-overlay` (Calico replaces flannel, calico.yaml) or `vcn-native` (policy only \
beside the OCI VCN-native CNI, calico-policy-only.yaml). Default: read from the OKE cluster `cluster_id`."""
    node_os: str | None = None
    """Worker node image: `oracle-linux-7`, `oracle-linux-8` or `oracle-linux-9` (8 and 9 get \
FELIX_IPTABLESBACKEND=NFT). Default: derived from the cluster's node pool images."""
    cluster_id: pulumi.Input[str] | None = None
    """OKE cluster OCID: the cluster every step acts on. Without `kubeconfig`, the kubeconfig OKE serves for it is \
used for everything (the Calico objects, flannel removal, the checks, the waits); with `kubeconfig`, both must name \
the same cluster. Settings are read from it; an unknown value (a cluster created in the same program) needs \
`network_type` and `node_os`."""
    kubeconfig: pulumi.Input[str] | None = None
    """Kubeconfig contents (not a path) of the cluster every step acts on, kept only as a secret. Without it, \
`cluster_id` names the cluster, or else a Kubernetes provider in the resource options (the component then cannot \
read the cluster itself). The current kube context is never used."""
    remove_flannel: bool = True
    """flannel-overlay: remove flannel (the OKE add-on and kube-system/kube-flannel-ds) before installing Calico."""
    allow_existing_nodes: bool = False
    """flannel-overlay: allow replacing flannel on a cluster that already has worker nodes (they keep flannel \
until recycled)."""
    skip_cluster_checks: bool = False
    """Go on when the cluster cannot be read before a change: without the checks of who manages Calico there, of \
another network provider, and of policy objects the release would stop enforcing (an `up` fails closed without it). \
Only for a cluster you know: a second Calico or a silently unenforced policy is what those checks prevent."""
    adopt_existing: bool = False
    """Take over Calico objects that already exist, such as a Calico installed by hand with kubectl. The cluster must \
then be reachable at preview: the check that no other stack manages them fails closed."""
    manifest_mirror: str | None = None
    """A directory (absolute path) or https base URL laid out as v<VERSION>/<file>, used instead of upstream."""
    manifest_sha256: str | None = None
    """Expected SHA-256 of the manifest: required for versions outside the table, checked for any version."""
    image_registry: str | None = None
    """The registry host and path that go before `calico/<image>` in every image: `iad.ocir.io/mytenancy` makes \
`iad.ocir.io/mytenancy/calico/node:v3.32.0` (a value ending with `/calico` doubles it, and gets a warning)."""
    # Beyond the document.
    pod_cidr: str | None = None
    """flannel-overlay: CALICO_IPV4POOL_CIDR, the pod CIDR of Calico's first IP pool. Default: the OKE cluster's \
pods CIDR."""
    typha: str = "auto"
    """flannel-overlay: `auto` (on above 50 managed nodes, or when `typha_replicas` is set), `on` or `off`."""
    typha_replicas: int | None = None
    """Replicas of calico-typha (vcn-native, or flannel-overlay with Typha). Default: upstream's."""
    calico_node_max_unavailable: str | None = None
    """How many nodes (`3`) or what share of them (`10%`) may be without a ready calico-node during a rolling \
update of calico-node (its updateStrategy's maxUnavailable). Default: upstream's 1, one node at a time. Higher rolls \
a large cluster faster; each node keeps its policy rules in the kernel while its calico-node restarts, but does not \
program changes in that time. Changing it updates calico-node in place without restarting its pods."""
    skip_await: bool = False
    """Do not wait for Calico to become ready (only for clusters without nodes yet)."""
    await_timeout_seconds: float | None = None
    """calico-node (awaited by the component when it can read the cluster: `kubeconfig` or `cluster_id`): how long \
its rollout may go without one more pod updated and ready before `up` fails, naming the pods and nodes holding it; a \
healthy rollout may take longer in all. calico-kube-controllers and calico-typha (and calico-node with only the \
providers of the resource options): how long `up` waits for each rollout in all. Default: 10 minutes."""
    verify_policy: bool = False
    """After calico-node is awaited, on an install and whenever calico-node's pod template changes (never on a no-op \
`up`), prove NetworkPolicy is enforced: probe pods and policies in a temporary namespace on `verify_policy_nodes` \
sample nodes, as `python -m calico_component verify` does; `up` fails naming the node and step when not. Needs \
`kubeconfig` or `cluster_id`, and nodes that can pull the probe image (moved by `image_registry`)."""
    verify_policy_nodes: int = 3
    """How many nodes the policy check samples (at least one per node pool and OS image)."""
    force_conflicts: bool = True
    """Server-side apply takes ownership of fields another manager changed, so drift is repaired."""
    strict_version_check: bool = False
    """Fail instead of warning when Oracle did not test this Calico and Kubernetes combination."""
    kubernetes_version: str | None = None
    """Kubernetes version for the compatibility check, e.g. v1.31.1. Default: read from the OKE cluster."""
    disable_flannel_addon: bool = True
    """flannel-overlay: disable the OKE Flannel add-on (needs `cluster_id`); false on basic or non-OKE clusters, \
where only kube-flannel-ds is deleted."""
    flannel_addon_name: str = DEFAULT_FLANNEL_ADDON_NAME
    """Name of the OKE flannel add-on."""
    oci_region: str | None = None
    """OCI region of every OCI call (the OKE lookups, the kubeconfig and its token command, the add-on step). \
Default: the OCI config's."""
    oci_profile: str | None = None
    """OCI config file profile of every OCI call and of the kubeconfig's token command. Default: DEFAULT."""
    oci_config_file: str | None = None
    """OCI config file of every OCI call and of the kubeconfig's token command. Default: ~/.oci/config (or \
OCI_CONFIG_FILE)."""
    oci_auth: str = "api_key"
    """How every OCI call and the kubeconfig's token command authenticate: `api_key` (the OCI config file), \
`instance_principal` (an OCI instance) or `resource_principal`."""
    oci_endpoint: str | None = None
    """Container Engine API endpoint of every OKE call. Default: the region's (or CALICO_OKE_OCI_ENDPOINT)."""
    addon_timeout_seconds: float = 900
    """How long to wait for the OKE add-on work request."""
    manifest_offline: bool = False
    """Never download from upstream: use the manifest cache or `manifest_mirror`."""
    manifest_timeout_seconds: float = 30
    """Per-attempt timeout of a manifest download (3 retries)."""


def validate_args(name: str, args: CalicoArgs) -> None:
    """Every input checked before any lookup or registration, each error naming the value and what to do."""
    if not isinstance(args, CalicoArgs):
        raise ConfigurationError(f"args must be a CalicoArgs, got {type(args).__name__}")
    for field_name in ("calico_version", "network_type", "node_os", "manifest_mirror", "manifest_sha256",
                       "image_registry", "pod_cidr", "kubernetes_version", "calico_node_max_unavailable", "oci_region",
                       "oci_profile", "oci_config_file", "oci_endpoint"):
        value = getattr(args, field_name)
        if value is not None and not isinstance(value, str):
            raise ConfigurationError(
                f"CalicoArgs.{field_name} must be a plain string (it decides which objects exist at preview time), "
                f"got {type(value).__name__}; resolve it in your program (e.g. from pulumi.Config)"
            )
    if args.oci_auth not in OCI_AUTH_METHODS:
        raise ConfigurationError(f"oci_auth {args.oci_auth!r} is not one of {', '.join(OCI_AUTH_METHODS)}")
    if args.network_type is not None:
        validate_network_type(args.network_type)
    if args.node_os is not None:
        validate_node_os(args.node_os)
    validate_typha_mode(args.typha)
    if args.calico_node_max_unavailable is not None:
        validate_max_unavailable(args.calico_node_max_unavailable)
    if args.await_timeout_seconds is not None and (
        isinstance(args.await_timeout_seconds, bool) or not isinstance(args.await_timeout_seconds, int | float)
        or args.await_timeout_seconds <= 0
    ):
        raise ConfigurationError(
            f"await_timeout_seconds must be a positive number of seconds, got {args.await_timeout_seconds!r}"
        )
    _validate_policy_check(name, args)
    detecting = args.network_type is None or args.node_os is None
    if detecting and args.cluster_id is None:
        raise ConfigurationError(
            f"Calico {name!r}: network_type and node_os are required without cluster_id "
            "(with an OKE cluster_id they are read from the cluster)"
        )
    if detecting and not isinstance(args.cluster_id, str):
        raise ConfigurationError(
            f"Calico {name!r}: network_type and node_os can only be detected from a known cluster OCID; "
            "cluster_id is an Output here (a cluster created in this program?), so set both explicitly"
        )
    flannel_steps = args.network_type == "flannel-overlay" and args.remove_flannel
    if flannel_steps and args.disable_flannel_addon and args.cluster_id is None:
        raise ConfigurationError(
            f"Calico {name!r}: removing flannel disables the OKE Flannel add-on, which needs cluster_id. "
            "Pass the cluster OCID, or set disable_flannel_addon=False on basic or non-OKE clusters "
            "(the kube-flannel-ds DaemonSet is still removed)"
        )
    if flannel_steps and args.kubeconfig is None and args.cluster_id is None:
        raise ConfigurationError(
            f"Calico {name!r}: removing flannel deletes kube-system/kube-flannel-ds, and calico-oke acts only on the "
            "cluster you name, never on the current kube context. Pass kubeconfig (the cluster's kubeconfig contents) "
            "or cluster_id (the kubeconfig OKE serves for it is used), or set remove_flannel=False and remove flannel "
            "yourself"
        )


def _validate_policy_check(name: str, args: CalicoArgs) -> None:
    """``verify_policy`` runs pods after calico-node was awaited, on the cluster the component names."""
    if not isinstance(args.verify_policy, bool):
        raise ConfigurationError(f"verify_policy must be true or false, got {args.verify_policy!r}")
    nodes = args.verify_policy_nodes
    if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 1:
        raise ConfigurationError(f"verify_policy_nodes must be a whole number of nodes, 1 or more, got {nodes!r}")
    if not args.verify_policy:
        return
    if args.skip_await:
        raise ConfigurationError(
            f"Calico {name!r}: verify_policy proves policy on running calico-node pods, and skip_await does not wait "
            "for them (a cluster without nodes yet). Turn one of them off; once nodes exist, drop skip_await")
    if args.kubeconfig is None and args.cluster_id is None:
        raise ConfigurationError(
            f"Calico {name!r}: verify_policy creates its probe pods on the cluster the component names, never on the "
            "current kube context. Pass kubeconfig (the cluster's kubeconfig contents) or cluster_id, or run "
            "`python -m calico_component verify --kubeconfig FILE` yourself")
