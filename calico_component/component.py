"""The Calico Pulumi ComponentResource: flannel removal, then every manifest object as a managed child."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import pulumi

from .detect import (
    ClusterFacts,
    NodePoolFacts,
    lookup_cluster,
    lookup_node_pools,
    network_type_from_cni,
    node_os_from_pools,
    refuse_cni_mismatch,
    refuse_virtual_node_pools,
)
from .errors import ConfigurationError
from .fetch import FetchOptions
from .flannel import DEFAULT_FLANNEL_ADDON_NAME, DaemonSetAbsent, OkeAddonDisabled
from .releases import UntestedCombinationWarning, check_compatibility, validate_network_type, validate_node_os
from .render import RenderResult, render
from .resources import (
    PATCH_FORCE_ANNOTATION,
    SKIP_AWAIT_ANNOTATION,
    check_supported,
    create_resource,
    is_crd,
    logical_name,
    with_annotations,
)

TYPE_TOKEN = "calico-oke:index:Calico"
_OCI_AUTH = ("api_key", "instance_principal", "resource_principal")


@dataclass(kw_only=True)
class CalicoArgs:
    """Inputs of :class:`Calico`. Everything but ``calico_version`` has a default.

    ``calico_version`` and ``network_type`` decide which objects exist, so they must be
    plain values (not Outputs); ``cluster_id`` and ``kubeconfig`` may be Outputs.
    """

    calico_version: str
    network_type: str | None = None
    node_os: str | None = None
    cluster_id: pulumi.Input[str] | None = None
    kubeconfig: pulumi.Input[str] | None = None
    remove_flannel: bool = True
    allow_existing_nodes: bool = False
    manifest_mirror: str | None = None
    manifest_sha256: str | None = None
    image_registry: str | None = None
    # Beyond the document, all off by default.
    pod_cidr: str | None = None
    typha_replicas: int | None = None
    skip_await: bool = False
    force_conflicts: bool = True
    strict_version_check: bool = False
    kubernetes_version: str | None = None
    disable_flannel_addon: bool = True
    flannel_addon_name: str = DEFAULT_FLANNEL_ADDON_NAME
    oci_region: str | None = None
    oci_profile: str | None = None
    oci_auth: str = "api_key"
    oci_endpoint: str | None = None
    addon_timeout_seconds: float = 900
    manifest_offline: bool = False
    manifest_timeout_seconds: float = 30


class Calico(pulumi.ComponentResource):
    """Calico on an OKE (or any) Kubernetes cluster, every manifest object a child resource."""

    calico_version: pulumi.Output[str]
    network_type: pulumi.Output[str]
    node_os: pulumi.Output[str]
    manifest_url: pulumi.Output[str]
    manifest_sha256: pulumi.Output[str]
    object_count: pulumi.Output[int]
    resource_names: pulumi.Output[list[str]]

    def __init__(self, name: str, args: CalicoArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE_TOKEN, name, None, opts)
        _validate_plain(args)

        cluster_id = args.cluster_id if isinstance(args.cluster_id, str) else None
        # With explicit inputs no OCI lookup is made, except the node pool guards of flannel removal.
        needs_detection = args.network_type is None or args.node_os is None
        if (args.network_type is None or args.node_os is None) and args.cluster_id is None:
            raise ConfigurationError(
                f"Calico {name!r}: network_type and node_os are required without cluster_id "
                "(with an OKE cluster_id they are read from the cluster)"
            )
        if (args.network_type is None or args.node_os is None) and cluster_id is None:
            raise ConfigurationError(
                f"Calico {name!r}: network_type and node_os can only be detected from a known cluster OCID; "
                "cluster_id is an Output here (a cluster created in this program?), so set both explicitly"
            )

        cluster: ClusterFacts | None = None
        pools: NodePoolFacts | None = None
        flannel_mode_hint = args.network_type == "flannel-overlay"
        if cluster_id is not None and (needs_detection or (flannel_mode_hint and args.remove_flannel)):
            cluster = lookup_cluster(cluster_id, self)
        network_type = validate_network_type(
            args.network_type if args.network_type is not None
            else network_type_from_cni(cluster.cni_type if cluster else None, str(cluster_id))
        )
        if cluster is not None:
            refuse_cni_mismatch(network_type, cluster)
        flannel_steps = network_type == "flannel-overlay" and args.remove_flannel
        if cluster is not None and (args.node_os is None or flannel_steps):
            pools = lookup_node_pools(cluster, self)
            refuse_virtual_node_pools(pools, cluster.cluster_id)
        node_os = validate_node_os(
            args.node_os if args.node_os is not None else node_os_from_pools(pools, str(cluster_id))  # type: ignore[arg-type]
        )
        if flannel_steps and args.disable_flannel_addon and args.cluster_id is None:
            raise ConfigurationError(
                f"Calico {name!r}: removing flannel disables the OKE Flannel add-on, which needs cluster_id. "
                "Pass the cluster OCID, or set disable_flannel_addon=False on basic or non-OKE clusters "
                "(the kube-flannel-ds DaemonSet is still removed)"
            )

        k8s_version = args.kubernetes_version or (cluster.kubernetes_version if cluster else None)
        if k8s_version:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", UntestedCombinationWarning)
                check_compatibility(args.calico_version, k8s_version, strict=args.strict_version_check)
            for w in caught:
                pulumi.log.warn(str(w.message), resource=self)

        rendered = render(
            args.calico_version,
            network_type,
            node_os,
            manifest_sha256=args.manifest_sha256,
            image_registry=args.image_registry,
            pod_cidr=args.pod_cidr,
            typha_replicas=args.typha_replicas,
            fetch_options=FetchOptions(
                mirror=args.manifest_mirror,
                offline=args.manifest_offline,
                timeout=args.manifest_timeout_seconds,
            ),
        )
        check_supported(rendered.objects, rendered.calico_version)

        child = pulumi.ResourceOptions(parent=self)
        k8s_opts = child
        if args.kubeconfig is not None:
            import pulumi_kubernetes as k8s

            provider = k8s.Provider(
                f"{name}-k8s",
                kubeconfig=args.kubeconfig,
                enable_server_side_apply=True,
                opts=child,
            )
            k8s_opts = pulumi.ResourceOptions(parent=self, provider=provider)

        removal: list[pulumi.Resource] = []
        if flannel_steps:
            removal = self._remove_flannel(name, args, pools, child)

        annotations = {PATCH_FORCE_ANNOTATION: "true"} if args.force_conflicts else {}
        self._children = self._deploy(name, rendered, annotations, args.skip_await, k8s_opts, removal)

        self.calico_version = pulumi.Output.from_input(rendered.calico_version)
        self.network_type = pulumi.Output.from_input(rendered.network_type)
        self.node_os = pulumi.Output.from_input(rendered.node_os)
        self.manifest_url = pulumi.Output.from_input(rendered.manifest_url)
        self.manifest_sha256 = pulumi.Output.from_input(rendered.manifest_sha256)
        self.object_count = pulumi.Output.from_input(len(rendered.objects))
        self.resource_names = pulumi.Output.from_input(list(self._children))
        self.register_outputs({
            "calico_version": self.calico_version,
            "network_type": self.network_type,
            "node_os": self.node_os,
            "manifest_url": self.manifest_url,
            "manifest_sha256": self.manifest_sha256,
            "object_count": self.object_count,
            "resource_names": self.resource_names,
        })

    def _remove_flannel(
        self, name: str, args: CalicoArgs, pools: NodePoolFacts | None, child: pulumi.ResourceOptions
    ) -> list[pulumi.Resource]:
        steps: list[pulumi.Resource] = []
        if args.disable_flannel_addon:
            assert args.cluster_id is not None
            addon = OkeAddonDisabled(
                f"{name}-flannel-addon",
                cluster_id=args.cluster_id,
                addon_name=args.flannel_addon_name,
                region=args.oci_region,
                profile=args.oci_profile,
                auth=args.oci_auth,
                endpoint=args.oci_endpoint,
                timeout_seconds=args.addon_timeout_seconds,
                existing_node_count=pools.node_count if pools else None,
                allow_existing_nodes=args.allow_existing_nodes,
                opts=child,
            )
            steps.append(addon)
        daemonset = DaemonSetAbsent(
            f"{name}-flannel-daemonset",
            kubeconfig=args.kubeconfig,
            # With an OKE cluster the node guard is the add-on step's (node pools); else ask Kubernetes.
            check_nodes=not (args.disable_flannel_addon and pools is not None),
            allow_existing_nodes=args.allow_existing_nodes,
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=list(steps))),
        )
        steps.append(daemonset)
        return steps

    def _deploy(
        self,
        name: str,
        rendered: RenderResult,
        annotations: dict[str, str],
        skip_await: bool,
        k8s_opts: pulumi.ResourceOptions,
        removal: list[pulumi.Resource],
    ) -> dict[str, pulumi.CustomResource]:
        children: dict[str, pulumi.CustomResource] = {}
        crds: list[pulumi.Resource] = []
        # CRDs first; never deleted by Pulumi (deleting a CRD deletes every Calico resource of its kind).
        for obj in rendered.objects:
            if is_crd(obj):
                n = logical_name(name, obj)
                opts = pulumi.ResourceOptions.merge(
                    k8s_opts, pulumi.ResourceOptions(depends_on=list(removal), retain_on_delete=True)
                )
                children[n] = create_resource(n, with_annotations(obj, annotations), opts)
                crds.append(children[n])
        extra = {**annotations, SKIP_AWAIT_ANNOTATION: "true"} if skip_await else annotations
        for obj in rendered.objects:
            if is_crd(obj):
                continue
            n = logical_name(name, obj)
            opts = pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(depends_on=list(removal) + crds))
            children[n] = create_resource(n, with_annotations(obj, extra), opts)
        return children


def _validate_plain(args: CalicoArgs) -> None:
    if not isinstance(args, CalicoArgs):
        raise ConfigurationError(f"args must be a CalicoArgs, got {type(args).__name__}")
    for field_name in ("calico_version", "network_type", "node_os", "manifest_mirror", "manifest_sha256",
                       "image_registry", "pod_cidr", "kubernetes_version"):
        value = getattr(args, field_name)
        if value is not None and not isinstance(value, str):
            raise ConfigurationError(
                f"CalicoArgs.{field_name} must be a plain string (it decides which objects exist at preview time), "
                f"got {type(value).__name__}; resolve it in your program (e.g. from pulumi.Config)"
            )
    if args.oci_auth not in _OCI_AUTH:
        raise ConfigurationError(f"oci_auth {args.oci_auth!r} is not one of {', '.join(_OCI_AUTH)}")
