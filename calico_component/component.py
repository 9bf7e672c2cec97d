"""The Calico Pulumi ComponentResource: flannel removal, then every manifest object as a managed child."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import pulumi

from . import ownership, retired
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
from .errors import ConfigurationError, GuardError
from .fetch import FetchOptions
from .flannel import DEFAULT_FLANNEL_ADDON_NAME, DaemonSetAbsent, OkeAddonDisabled
from .ownership import OWNER_ANNOTATION, ClusterUnreachableError
from .plan import PodCidrChoice, TyphaChoice, choose_pod_cidr, choose_typha, validate_typha_mode
from .policy_check import PolicyCheck, template_digest
from .providers import KubernetesOptions, checked_kubeconfig, create_providers
from .releases import (
    NetworkType,
    NodeOS,
    UntestedCombinationWarning,
    check_compatibility,
    validate_network_type,
    validate_node_os,
)
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
from .rollout_wait import RolloutAwaited
from .transforms import is_calico_node, validate_max_unavailable

TYPE_TOKEN = "calico-oke:index:Calico"
OCI_AUTH_METHODS = ("api_key", "instance_principal", "resource_principal")
#: Calico's own pods: created after every CRD. Started before them, calico-node's startup cannot write
#: ClusterInformation (it logs the error and exits 0), Felix then waits for a datastore-ready flag that never comes,
#: and its /readiness answers 200 all the while (only its start-up reporter is registered): a Ready pod that
#: enforces nothing (seen on the local dataplane node, Calico 3.28.0).
WORKLOAD_KINDS = frozenset({"DaemonSet", "Deployment"})
#: Kinds pulumi-kubernetes waits for (their rollout): ``await_timeout_seconds`` bounds them.
AWAITED_KINDS = WORKLOAD_KINDS
#: Kinds never awaited. pulumi-kubernetes' Service await ends only after 10 quiet seconds without an Endpoints event,
#: a fixed cost that proves nothing here: in vcn-native no calico-node uses the calico-typha Service (Oracle's edits
#: remove FELIX_TYPHAK8SSERVICENAME), and where calico-node does use Typha its own readiness (Felix ready) needs a
#: Typha connection, while the calico-typha Deployment's rollout await covers Typha's pods.
NEVER_AWAITED_KINDS = frozenset({"Service"})
#: How long calico-node's rollout may go without one more pod updated and ready, unless await_timeout_seconds says.
DEFAULT_PROGRESS_DEADLINE_SECONDS = 600.0
#: How long the policy check waits for each probe pod (image pull included) before the node counts as not checked.
POLICY_POD_TIMEOUT_SECONDS = 120.0

_UNCHECKED_RETIRED = (
    "Calico {version} no longer enforces AdminNetworkPolicy and BaselineAdminNetworkPolicy objects, and calico-oke "
    "could not check the cluster for them ({why}): before this install or upgrade, make sure "
    "`kubectl get adminnetworkpolicies,baselineadminnetworkpolicies` lists none (move them to ClusterNetworkPolicy or "
    "Calico policy){then}."
)

_UNREACHABLE_WARNING = (
    "could not check who manages Calico on the cluster before changing it ({why}); going on, since without "
    "adopt_existing the Kubernetes provider refuses to create an object that already exists"
)
_UNREACHABLE_ADOPT = (
    "adopt_existing takes over the Calico objects it finds, so calico-oke first checks that no other stack manages "
    "them, and that check could not reach the cluster ({why}). Nothing was changed. Make the API server reachable from "
    "here (VPN, bastion, private endpoint), then run the command again"
)


@dataclass(kw_only=True)
class CalicoArgs:
    """Inputs of :class:`Calico`. Everything but ``calico_version`` has a default.

    ``calico_version`` and ``network_type`` decide which objects exist, so they must be
    plain values (not Outputs); ``cluster_id`` and ``kubeconfig`` may be Outputs. Each field's
    docstring is also its description in the Pulumi package schema (``calico_component.inputs``).
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
    """OKE cluster OCID. Needed for flannel removal through the OKE add-on and to read settings from the \
cluster; an unknown value (a cluster created in the same program) needs `network_type` and `node_os`."""
    kubeconfig: pulumi.Input[str] | None = None
    """Kubeconfig contents (not a path), kept only as a secret. Creates the component's own Kubernetes providers; \
without it the providers of the resource options apply, and flannel removal uses the kubeconfig OKE serves for \
`cluster_id` (never the current kube context)."""
    remove_flannel: bool = True
    """flannel-overlay: remove flannel (the OKE add-on and kube-system/kube-flannel-ds) before installing Calico."""
    allow_existing_nodes: bool = False
    """flannel-overlay: allow replacing flannel on a cluster that already has worker nodes (they keep flannel \
until recycled)."""
    adopt_existing: bool = False
    """Take over Calico objects that already exist, such as a Calico installed by hand with kubectl. The cluster must \
then be reachable at preview: the check that no other stack manages them fails closed."""
    manifest_mirror: str | None = None
    """A directory (absolute path) or https base URL laid out as v<VERSION>/<file>, used instead of upstream."""
    manifest_sha256: str | None = None
    """Expected SHA-256 of the manifest: required for versions outside the table, checked for any version."""
    image_registry: str | None = None
    """Rewrite every image to this registry prefix, e.g. an OCIR repository such as \
iad.ocir.io/mytenancy/calico."""
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
    """OCI region for the add-on step. Default: the OCI SDK's (config file or environment)."""
    oci_profile: str | None = None
    """OCI config file profile for the add-on step. Default: the OCI SDK's."""
    oci_auth: str = "api_key"
    """How the add-on step authenticates to OCI: `api_key`, `instance_principal` or `resource_principal`."""
    oci_endpoint: str | None = None
    """Container Engine API endpoint for the add-on step. Default: the region's."""
    addon_timeout_seconds: float = 900
    """How long to wait for the OKE add-on work request."""
    manifest_offline: bool = False
    """Never download from upstream: use the manifest cache or `manifest_mirror`."""
    manifest_timeout_seconds: float = 30
    """Per-attempt timeout of a manifest download (3 retries)."""


@dataclass(frozen=True)
class _Cluster:
    """What is known about the target cluster: the resolved mode and OS, and the OKE facts looked up."""

    network_type: NetworkType
    node_os: NodeOS
    facts: ClusterFacts | None
    pools: NodePoolFacts | None


class Calico(pulumi.ComponentResource):
    """Calico on an OKE (or any) Kubernetes cluster, every manifest object a child resource."""

    calico_version: pulumi.Output[str]
    """The installed Calico release."""
    network_type: pulumi.Output[str]
    """`flannel-overlay` or `vcn-native`, as given or read from the cluster."""
    node_os: pulumi.Output[str]
    """The node OS the manifest was edited for."""
    manifest_url: pulumi.Output[str]
    """Upstream URL of the manifest (never the mirror's)."""
    manifest_sha256: pulumi.Output[str]
    """SHA-256 the manifest was verified against."""
    object_count: pulumi.Output[int]
    """How many Kubernetes objects the manifest has (each one a child resource)."""
    resource_names: pulumi.Output[list[str]]
    """Pulumi names of the child resources, one per manifest object."""
    typha_enabled: pulumi.Output[bool]
    """Whether Typha runs."""
    pod_cidr: pulumi.Output[str | None]
    """The pod CIDR given to Calico's first IP pool (flannel-overlay), if any."""
    policy_check: pulumi.Output[str | None]
    """With `verify_policy`: the last policy check's summary (`verify: policy enforced on N of N nodes checked ...`)."""

    def __init__(self, name: str, args: CalicoArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        _validate_args(name, args)  # before registering: a refused program leaves not even the component in state
        super().__init__(TYPE_TOKEN, name, None, opts)
        # Checked and marked secret before anything else: it never reaches state, logs or errors in plaintext.
        kubeconfig = checked_kubeconfig(args.kubeconfig) if args.kubeconfig is not None else None
        cluster = self._resolve_cluster(args)
        self._check_compatibility(args, cluster.facts)
        typha, pod_cidr = self._choose_extras(args, cluster)
        rendered = render(
            args.calico_version,
            cluster.network_type,
            cluster.node_os,
            manifest_sha256=args.manifest_sha256,
            image_registry=args.image_registry,
            pod_cidr=pod_cidr.cidr,
            typha=typha.typha_manifest,
            typha_replicas=args.typha_replicas,
            calico_node_max_unavailable=args.calico_node_max_unavailable,
            fetch_options=FetchOptions(
                mirror=args.manifest_mirror,
                offline=args.manifest_offline,
                timeout=args.manifest_timeout_seconds,
            ),
        )
        check_supported(rendered.objects, rendered.calico_version)

        removing = cluster.network_type == "flannel-overlay" and args.remove_flannel
        target = kubeconfig if kubeconfig is not None or not removing else self._oke_kubeconfig(args)
        if target is not None:
            target = self._guarded(target, rendered, args.adopt_existing)
        else:
            self._warn_unchecked_retired(rendered.calico_version, "no kubeconfig input",
                                         ", or pass kubeconfig so the component checks")
        providers_kubeconfig = target if kubeconfig is not None else None
        k8s_opts = create_providers(name, providers_kubeconfig, args.cluster_id, adopt_existing=args.adopt_existing,
                                    parent=self)
        removal = self._remove_flannel(name, args, target, cluster.pools) if removing else []
        reader = self._cluster_reader(args, target)
        self_awaited = reader is not None and not args.skip_await
        self._children = self._deploy(name, rendered, args, k8s_opts, removal, self_awaited)
        rolled = self._await_rollout(name, args, rendered, reader) if self_awaited and reader is not None else []
        check = self._policy_check(name, args, rendered, reader, rolled) if args.verify_policy else None
        self._register(rendered, typha, pod_cidr, check)

    def _guarded(self, kubeconfig: pulumi.Output[str], rendered: RenderResult, adopt: bool) -> pulumi.Output[str]:
        """The kubeconfig, available to the providers only once the cluster was checked: when another stack or a hand
        install owns Calico there (``ownership``), or when the release would silently stop enforcing policy objects the
        cluster holds (``retired``), preview fails before any provider exists, so nothing changes."""
        objects, me, version = list(rendered.objects), stack_identity(), rendered.calico_version

        def check(text: str) -> str:
            try:
                ownership.check_cluster(text, objects, me, adopt)
                warning = retired.check_cluster(text, version)
            except ClusterUnreachableError as exc:
                if adopt:
                    raise pulumi.RunError(_UNREACHABLE_ADOPT.format(why=exc)) from None
                pulumi.log.warn(_UNREACHABLE_WARNING.format(why=exc), resource=self)
                self._warn_unchecked_retired(version, "the cluster could not be reached", "")
            except GuardError as exc:
                # Raised inside an apply: a RunError is shown as its message alone, any other exception with a traceback.
                raise pulumi.RunError(str(exc)) from None
            else:
                if warning:
                    pulumi.log.warn(warning, resource=self)
            return text

        return kubeconfig.apply(check)

    def _oke_kubeconfig(self, args: CalicoArgs) -> pulumi.Output[str]:
        """The kubeconfig OKE serves for ``cluster_id`` (a secret): flannel removal acts on that cluster, never on the
        current kube context (``_validate_args`` made sure one of the two inputs is there)."""
        import pulumi_oci as oci

        assert args.cluster_id is not None
        result = oci.containerengine.get_cluster_kube_config_output(
            cluster_id=args.cluster_id, token_version="2.0.0", opts=pulumi.InvokeOptions(parent=self))
        return pulumi.Output.secret(result.content)

    def _warn_unchecked_retired(self, version: str, why: str, then: str) -> None:
        """Say so when ``version`` retires policy kinds that could not be looked for on the cluster."""
        if retired.retired_kinds(version):
            pulumi.log.warn(_UNCHECKED_RETIRED.format(version=version, why=why, then=then), resource=self)

    def _resolve_cluster(self, args: CalicoArgs) -> _Cluster:
        """Network type and node OS, from the inputs or the OKE cluster, with the guards of Oracle's page.

        With explicit inputs no OCI lookup is made, except what flannel-overlay needs: the node
        pools (guards, Typha auto) and the cluster (pods CIDR), when ``cluster_id`` is a known OCID.
        """
        cluster_id = args.cluster_id if isinstance(args.cluster_id, str) else None
        detecting = args.network_type is None or args.node_os is None
        wants_cluster = detecting or (args.network_type == "flannel-overlay" and args.pod_cidr is None)
        facts = None
        if cluster_id is not None and (wants_cluster or _flannel_needs_pools(args, args.network_type)):
            facts = lookup_cluster(cluster_id, self)
        network_type = validate_network_type(
            args.network_type if args.network_type is not None
            else network_type_from_cni(facts.cni_type if facts else None, str(cluster_id))
        )
        if facts is not None:
            refuse_cni_mismatch(network_type, facts)
        pools: NodePoolFacts | None = None
        if facts is not None and (args.node_os is None or _flannel_needs_pools(args, network_type)):
            pools = lookup_node_pools(facts, self)
            refuse_virtual_node_pools(pools, facts.cluster_id)
        if args.node_os is not None:
            node_os = validate_node_os(args.node_os)
        else:
            assert pools is not None  # _validate_args: detection needs a known cluster OCID
            node_os = node_os_from_pools(pools, str(cluster_id))
        return _Cluster(network_type, node_os, facts, pools)

    def _check_compatibility(self, args: CalicoArgs, facts: ClusterFacts | None) -> None:
        """Warn (or fail, in strict mode) when Oracle did not test this Calico / Kubernetes pair."""
        k8s_version = args.kubernetes_version or (facts.kubernetes_version if facts else None)
        if not k8s_version:
            return
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UntestedCombinationWarning)
            check_compatibility(args.calico_version, k8s_version, strict=args.strict_version_check)
        for w in caught:
            pulumi.log.warn(str(w.message), resource=self)

    def _choose_extras(self, args: CalicoArgs, cluster: _Cluster) -> tuple[TyphaChoice, PodCidrChoice]:
        """Typha and the pod CIDR (decisions beyond Oracle's document), logged so preview shows why."""
        typha = choose_typha(args.typha, cluster.network_type, replicas=args.typha_replicas,
                             node_count=cluster.pools.node_count if cluster.pools else None)
        pod_cidr = choose_pod_cidr(cluster.network_type, args.pod_cidr, cluster.facts.pods_cidr if cluster.facts else None)
        if cluster.network_type == "flannel-overlay":
            pulumi.log.info(f"Typha {'on' if typha.enabled else 'off'}: {typha.reason}", resource=self)
            if pod_cidr.source == "cluster":
                pulumi.log.info(f"pod CIDR {pod_cidr.cidr} read from the cluster's pods CIDR", resource=self)
        if pod_cidr.warning:
            pulumi.log.warn(pod_cidr.warning, resource=self)
        return typha, pod_cidr

    def _remove_flannel(
        self, name: str, args: CalicoArgs, kubeconfig: pulumi.Output[str] | None, pools: NodePoolFacts | None
    ) -> list[pulumi.Resource]:
        child = pulumi.ResourceOptions(parent=self)
        steps: list[pulumi.Resource] = []
        if args.disable_flannel_addon:
            assert args.cluster_id is not None
            addon = OkeAddonDisabled(
                f"{name}-flannel-addon",
                cluster_id=_after(kubeconfig, args.cluster_id),
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
            kubeconfig=kubeconfig,
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
        args: CalicoArgs,
        k8s_opts: KubernetesOptions,
        removal: list[pulumi.Resource],
        self_awaited: bool = False,
    ) -> dict[str, pulumi.CustomResource]:
        children: dict[str, pulumi.CustomResource] = {}
        annotations = {OWNER_ANNOTATION: stack_identity(),
                       **({PATCH_FORCE_ANNOTATION: "true"} if args.force_conflicts else {})}
        crds: list[pulumi.Resource] = []
        # CRDs first; never deleted by Pulumi (deleting a CRD deletes every Calico resource of its kind).
        crd_opts = pulumi.ResourceOptions.merge(
            k8s_opts.crds, pulumi.ResourceOptions(depends_on=list(removal), retain_on_delete=True)
        )
        for obj in rendered.objects:
            if is_crd(obj):
                n = logical_name(name, obj)
                children[n] = create_resource(n, with_annotations(obj, annotations), crd_opts)
                crds.append(children[n])
        skip_await = {**annotations, SKIP_AWAIT_ANNOTATION: "true"}
        timeouts = _await_timeouts(args.await_timeout_seconds)
        for obj in rendered.objects:
            if is_crd(obj):
                continue
            n = logical_name(name, obj)
            kind = obj.get("kind", "")
            not_awaited = args.skip_await or kind in NEVER_AWAITED_KINDS or (self_awaited and is_calico_node(obj))
            extra = skip_await if not_awaited else annotations
            # Only Calico's workloads wait for the CRDs (WORKLOAD_KINDS says why: started before them, calico-node can be
            # Ready and enforce nothing); RBAC, ConfigMaps, Services and PDBs do not: an edge costs each ~4 KB of state.
            depends_on = list(removal) + (crds if kind in WORKLOAD_KINDS else [])
            opts = pulumi.ResourceOptions.merge(k8s_opts.objects, pulumi.ResourceOptions(
                depends_on=depends_on, custom_timeouts=timeouts if kind in AWAITED_KINDS else None))
            children[n] = create_resource(n, with_annotations(obj, extra), opts)
        return children

    def _cluster_reader(self, args: CalicoArgs, target: pulumi.Output[str] | None) -> pulumi.Output[str] | None:
        """The kubeconfig the component's own reads of the cluster use (the rollout wait, the policy check): the
        checked one, else OKE's for ``cluster_id``; None with only the providers of ``opts``."""
        if target is not None:
            return target
        return self._oke_kubeconfig(args) if args.cluster_id is not None else None

    def _await_rollout(self, name: str, args: CalicoArgs, rendered: RenderResult,
                       kubeconfig: pulumi.Output[str]) -> list[pulumi.Resource]:
        """calico-node's rollout awaited by progress (``rollout_wait``), not by the provider's total timeout."""
        ds = next(obj for obj in rendered.objects if is_calico_node(obj))
        meta = ds.get("metadata") or {}
        return [RolloutAwaited(
            f"{name}-calico-node-rollout", kubeconfig=kubeconfig, namespace=str(meta.get("namespace") or "kube-system"),
            daemonset=str(meta.get("name")), trigger=template_digest(rendered.objects, rendered.calico_version),
            deadline_seconds=args.await_timeout_seconds or DEFAULT_PROGRESS_DEADLINE_SECONDS,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self._children[logical_name(name, ds)]]))]

    def _policy_check(self, name: str, args: CalicoArgs, rendered: RenderResult,
                      kubeconfig: pulumi.Output[str] | None, rolled: list[pulumi.Resource]) -> PolicyCheck:
        """The check, after every awaited workload (calico-node's rollout, and Typha and kube-controllers it may
        need)."""
        assert kubeconfig is not None  # _validate_policy_check: kubeconfig or cluster_id
        workloads = [self._children[logical_name(name, obj)] for obj in rendered.objects
                     if obj.get("kind") in WORKLOAD_KINDS] + rolled
        return PolicyCheck(
            f"{name}-policy-check", kubeconfig=kubeconfig,
            trigger=template_digest(rendered.objects, rendered.calico_version), nodes=args.verify_policy_nodes,
            image_registry=args.image_registry, pod_timeout_seconds=POLICY_POD_TIMEOUT_SECONDS,
            opts=pulumi.ResourceOptions(parent=self, depends_on=workloads))

    def _register(self, rendered: RenderResult, typha: TyphaChoice, pod_cidr: PodCidrChoice,
                  check: PolicyCheck | None) -> None:
        self.calico_version = pulumi.Output.from_input(rendered.calico_version)
        self.network_type = pulumi.Output.from_input(rendered.network_type)
        self.node_os = pulumi.Output.from_input(rendered.node_os)
        self.manifest_url = pulumi.Output.from_input(rendered.manifest_url)
        self.manifest_sha256 = pulumi.Output.from_input(rendered.manifest_sha256)
        self.object_count = pulumi.Output.from_input(len(rendered.objects))
        self.resource_names = pulumi.Output.from_input(list(self._children))
        self.typha_enabled = pulumi.Output.from_input(typha.enabled)
        self.pod_cidr = pulumi.Output.from_input(pod_cidr.cidr)
        self.policy_check = check.summary if check is not None else pulumi.Output.from_input(None)
        self.register_outputs({
            "calico_version": self.calico_version,
            "network_type": self.network_type,
            "node_os": self.node_os,
            "manifest_url": self.manifest_url,
            "manifest_sha256": self.manifest_sha256,
            "object_count": self.object_count,
            "resource_names": self.resource_names,
            "typha_enabled": self.typha_enabled,
            "pod_cidr": self.pod_cidr,
            "policy_check": self.policy_check,
        })


def stack_identity() -> str:
    """``<organization>/<project>/<stack>``: the mark (``calico-oke.io/stack``) on every object this stack deploys."""
    return f"{pulumi.get_organization()}/{pulumi.get_project()}/{pulumi.get_stack()}"


def _after(kubeconfig: pulumi.Output[str] | None, value: pulumi.Input[str]) -> pulumi.Input[str]:
    """``value``, held back until the ownership check behind ``kubeconfig`` passed (without making it secret)."""
    if kubeconfig is None:
        return value
    checked = pulumi.Output.unsecret(kubeconfig.apply(lambda _: ""))
    return pulumi.Output.all(checked, value).apply(lambda pair: str(pair[1]))


def _flannel_needs_pools(args: CalicoArgs, network_type: str | None) -> bool:
    """flannel-overlay reads the node pools for the existing-nodes and virtual-pool guards of flannel removal,
    and for Typha auto (decided by the managed node count unless typha_replicas asks for Typha)."""
    typha_auto = args.typha == "auto" and args.typha_replicas is None
    return network_type == "flannel-overlay" and (args.remove_flannel or typha_auto)


def _await_timeouts(seconds: float | None) -> pulumi.CustomTimeouts | None:
    if seconds is None:
        return None
    return pulumi.CustomTimeouts(create=f"{seconds:g}s", update=f"{seconds:g}s")


def _validate_args(name: str, args: CalicoArgs) -> None:
    """Every input checked before any lookup or registration, each error naming the value and what to do."""
    if not isinstance(args, CalicoArgs):
        raise ConfigurationError(f"args must be a CalicoArgs, got {type(args).__name__}")
    for field_name in ("calico_version", "network_type", "node_os", "manifest_mirror", "manifest_sha256",
                       "image_registry", "pod_cidr", "kubernetes_version", "calico_node_max_unavailable"):
        value = getattr(args, field_name)
        if value is not None and not isinstance(value, str):
            raise ConfigurationError(
                f"CalicoArgs.{field_name} must be a plain string (it decides which objects exist at preview time), "
                f"got {type(value).__name__}; resolve it in your program (e.g. from pulumi.Config)"
            )
    if args.oci_auth not in OCI_AUTH_METHODS:
        raise ConfigurationError(f"oci_auth {args.oci_auth!r} is not one of {', '.join(OCI_AUTH_METHODS)}")
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
