"""The Calico Pulumi ComponentResource: flannel removal, then every manifest object as a managed child."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import pulumi

from ..cluster import networks, ownership, retired
from ..cluster.flannel import FLANNEL_DAEMONSET, FLANNEL_NAMESPACE
from ..cluster.oci_api import OciSettings
from ..cluster.oke import (
    ClusterFacts,
    NodePoolFacts,
    network_type_from_cni,
    node_os_from_pools,
    read_cluster,
    read_node_pools,
    refuse_cni_mismatch,
    refuse_virtual_node_pools,
)
from ..cluster.ownership import OWNER_ANNOTATION
from ..errors import CalicoError, ClusterAccessError
from ..manifest.fetch import FetchOptions
from ..manifest.images import registry_warning
from ..manifest.plan import PodCidrChoice, TyphaChoice, choose_pod_cidr, choose_typha
from ..manifest.releases import (
    NetworkType,
    NodeOS,
    UntestedCombinationWarning,
    check_compatibility,
    validate_network_type,
    validate_node_os,
)
from ..manifest.render import RenderResult, render
from ..manifest.transforms import is_calico_node, template_digest
from .args import CalicoArgs as CalicoArgs
from .args import validate_args
from .objects import (
    PATCH_FORCE_ANNOTATION,
    SKIP_AWAIT_ANNOTATION,
    check_supported,
    create_resource,
    is_crd,
    logical_name,
    with_annotations,
)
from .providers import KubernetesOptions, create_providers
from .steps import DaemonSetAbsent, OkeAddonDisabled, PolicyCheck, RolloutAwaited
from .target import Target, oci_settings, refuse_no_cluster, resolve

TYPE_TOKEN = "calico-oke:index:Calico"
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

_UNREADABLE_PREVIEW = (
    "could not read the cluster to check who manages Calico there, whether another network provider runs, and "
    "which policy objects it holds ({why}). This preview goes on; `pulumi up` will refuse to change anything until "
    "those checks can run (or with skip_cluster_checks)"
)
_UNREADABLE_UP = (
    "calico-oke reads the cluster before it changes anything (who manages Calico there, another network provider, "
    "policy objects the release would stop enforcing), and could not ({why}). Nothing was changed. Make the API "
    "server reachable from here (VPN, bastion, private endpoint) and run the command again; only if you know the "
    "cluster, set skip_cluster_checks (skipClusterChecks) to go on without those checks"
)
_UNREADABLE_ADOPT = (
    "adopt_existing takes over the Calico objects it finds, so calico-oke first checks that no other stack manages "
    "them, and that check could not reach the cluster ({why}). Nothing was changed. Make the API server reachable from "
    "here (VPN, bastion, private endpoint), then run the command again"
)
_SKIPPED = (
    "skip_cluster_checks: the cluster could not be read ({why}); going on without checking who manages Calico there, "
    "whether another network provider runs, and which policy objects the release would stop enforcing"
)


@dataclass(frozen=True)
class _Cluster:
    """What is known about the target cluster: the resolved mode and OS, and the OKE facts looked up."""

    network_type: NetworkType
    node_os: NodeOS
    facts: ClusterFacts | None
    pools: NodePoolFacts | None


def _compatibility(args: CalicoArgs, cluster: _Cluster) -> list[str]:
    """Oracle's table against the cluster's Kubernetes version: the warnings for an untested combination (raises
    CompatibilityError instead with ``strict_version_check``, before anything is registered)."""
    k8s_version = args.kubernetes_version or (cluster.facts.kubernetes_version if cluster.facts else None)
    if not k8s_version:
        return []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UntestedCombinationWarning)
        check_compatibility(args.calico_version, k8s_version, strict=args.strict_version_check)
    return [str(w.message) for w in caught]


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
        try:
            self._build(name, args, opts)
        except CalicoError as exc:
            raise shown_as_message(exc) from None

    def _build(self, name: str, args: CalicoArgs, opts: pulumi.ResourceOptions | None) -> None:
        # Everything that can refuse the program runs before it registers: a refused program leaves not even the
        # component in state. The OKE lookups are OCI SDK calls, made here (at preview too).
        validate_args(name, args)
        refuse_no_cluster(name, args, opts)
        settings = oci_settings(args)
        cluster = _resolve_cluster(args, settings)
        rendered, typha, pod_cidr = _render(args, cluster)
        target = resolve(name, args, settings, cluster.facts.endpoints if cluster.facts else None)
        untested = _compatibility(args, cluster)
        super().__init__(TYPE_TOKEN, name, None, opts)
        for text in untested:
            pulumi.log.warn(text, resource=self)
        self._explain(args, cluster, typha, pod_cidr, target, f"quay.io/calico/node:v{rendered.calico_version}")

        kubeconfig = self._guarded(target.kubeconfig, rendered, args) if target.kubeconfig is not None else None
        if kubeconfig is None:
            self._warn_unchecked_retired(rendered.calico_version, "only the providers of the resource options reach "
                                         "the cluster", ", or pass kubeconfig or cluster_id so the component checks")
        k8s_opts = create_providers(name, kubeconfig, target.identity, adopt_existing=args.adopt_existing, parent=self)
        removing = cluster.network_type == "flannel-overlay" and args.remove_flannel
        removal = self._remove_flannel(name, args, settings, kubeconfig, cluster.pools) if removing else []
        self_awaited = kubeconfig is not None and not args.skip_await
        self._children = self._deploy(name, rendered, args, k8s_opts, removal, self_awaited)
        rolled = self._await_rollout(name, args, rendered, kubeconfig) if self_awaited and kubeconfig else []
        check = self._policy_check(name, args, rendered, kubeconfig, rolled) if args.verify_policy else None
        self._register(rendered, typha, pod_cidr, check)

    def _explain(self, args: CalicoArgs, cluster: _Cluster, typha: TyphaChoice, pod_cidr: PodCidrChoice,
                 target: Target, upstream_node_image: str) -> None:
        """What preview should show of the decisions made before registering: Typha, the pod CIDR, an image registry
        that doubles ``calico/``, and what only the providers of the options cannot do."""
        if cluster.network_type == "flannel-overlay":
            pulumi.log.info(f"Typha {'on' if typha.enabled else 'off'}: {typha.reason}", resource=self)
            if pod_cidr.source == "cluster":
                pulumi.log.info(f"pod CIDR {pod_cidr.cidr} read from the cluster's pods CIDR", resource=self)
        if pod_cidr.warning:
            pulumi.log.warn(pod_cidr.warning, resource=self)
        if args.image_registry and (doubled := registry_warning(args.image_registry, upstream_node_image)):
            pulumi.log.warn(doubled, resource=self)
        if target.source == "providers":
            pulumi.log.info("the Kubernetes provider of the resource options installs Calico; the component cannot "
                            "read that cluster itself, so it does not check who manages Calico there, does not wait for "
                            "calico-node by progress (the provider awaits it), and cannot remove flannel or check "
                            "policy", resource=self)

    def _guarded(self, kubeconfig: pulumi.Output[str], rendered: RenderResult, args: CalicoArgs) -> pulumi.Output[str]:
        """The kubeconfig, available to the providers and steps only once the cluster was checked: another stack's or
        a hand-installed Calico (``ownership``), another network provider (``networks``), policy objects the release
        would silently stop enforcing (``retired``) fail preview before any provider exists, so nothing changes. A
        cluster that cannot be read is a warning at preview and an error at `up` (with adopt_existing, at preview
        too), unless skip_cluster_checks."""
        objects, me, version = list(rendered.objects), stack_identity(), rendered.calico_version

        def check(text: str) -> str:
            try:
                ownership.check_cluster(text, objects, me, args.adopt_existing)
                networks.check_cluster(text)
                warning = retired.check_cluster(text, version)
            except ClusterAccessError as exc:
                if not exc.transient:
                    raise pulumi.RunError(str(exc)) from None
                self._unreadable(str(exc), args, version)
            except CalicoError as exc:
                # Raised inside an apply: a RunError is shown as its message alone, any other exception with a traceback.
                raise pulumi.RunError(str(exc)) from None
            else:
                if warning:
                    pulumi.log.warn(warning, resource=self)
            return text

        return kubeconfig.apply(check)

    def _unreadable(self, why: str, args: CalicoArgs, version: str) -> None:
        """A cluster the checks could not read: fail closed, except at preview and with skip_cluster_checks."""
        if args.skip_cluster_checks:
            pulumi.log.warn(_SKIPPED.format(why=why), resource=self)
            self._warn_unchecked_retired(version, "the cluster could not be read", "")
            return
        if args.adopt_existing:
            raise pulumi.RunError(_UNREADABLE_ADOPT.format(why=why))
        if not pulumi.runtime.is_dry_run():
            raise pulumi.RunError(_UNREADABLE_UP.format(why=why))
        pulumi.log.warn(_UNREADABLE_PREVIEW.format(why=why), resource=self)
        self._warn_unchecked_retired(version, "the cluster could not be read", "")

    def _warn_unchecked_retired(self, version: str, why: str, then: str) -> None:
        """Say so when ``version`` retires policy kinds that could not be looked for on the cluster."""
        if retired.retired_kinds(version):
            pulumi.log.warn(_UNCHECKED_RETIRED.format(version=version, why=why, then=then), resource=self)

    def _remove_flannel(self, name: str, args: CalicoArgs, settings: OciSettings, kubeconfig: pulumi.Output[str] | None,
                        pools: NodePoolFacts | None) -> list[pulumi.Resource]:
        child = pulumi.ResourceOptions(parent=self)
        steps: list[pulumi.Resource] = []
        if args.disable_flannel_addon:
            assert args.cluster_id is not None
            addon = OkeAddonDisabled(
                f"{name}-flannel-addon",
                cluster_id=_after(kubeconfig, args.cluster_id),
                addon_name=args.flannel_addon_name,
                region=settings.region,
                profile=settings.profile,
                config_file=settings.config_file,
                auth=settings.auth,
                endpoint=settings.endpoint,
                timeout_seconds=args.addon_timeout_seconds,
                existing_node_count=pools.node_count if pools else None,
                allow_existing_nodes=args.allow_existing_nodes,
                opts=child,
            )
            steps.append(addon)
        assert kubeconfig is not None  # validate_args: removing flannel needs kubeconfig or cluster_id
        daemonset = DaemonSetAbsent(
            f"{name}-flannel-daemonset",
            kubeconfig=kubeconfig,
            namespace=FLANNEL_NAMESPACE,
            daemonset_name=FLANNEL_DAEMONSET,
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
        assert kubeconfig is not None  # validate_args: verify_policy needs kubeconfig or cluster_id
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


def _resolve_cluster(args: CalicoArgs, settings: OciSettings) -> _Cluster:
    """Network type and node OS, from the inputs or the OKE cluster, with the guards of Oracle's page.

    With explicit inputs no OCI lookup is made, except what flannel-overlay needs: the node pools (guards, Typha auto)
    and the cluster (pods CIDR), when ``cluster_id`` is a known OCID.
    """
    cluster_id = args.cluster_id if isinstance(args.cluster_id, str) else None
    detecting = args.network_type is None or args.node_os is None
    wants_cluster = detecting or (args.network_type == "flannel-overlay" and args.pod_cidr is None)
    facts = None
    if cluster_id is not None and (wants_cluster or _flannel_needs_pools(args, args.network_type)):
        facts = read_cluster(settings, cluster_id)
    network_type = validate_network_type(
        args.network_type if args.network_type is not None
        else network_type_from_cni(facts.cni_type if facts else None, str(cluster_id))
    )
    if facts is not None:
        refuse_cni_mismatch(network_type, facts)
    pools: NodePoolFacts | None = None
    if facts is not None and (args.node_os is None or _flannel_needs_pools(args, network_type)):
        pools = read_node_pools(settings, facts)
        refuse_virtual_node_pools(pools, facts.cluster_id)
    if args.node_os is not None:
        node_os = validate_node_os(args.node_os)
    else:
        assert pools is not None  # validate_args: detection needs a known cluster OCID
        node_os = node_os_from_pools(pools, str(cluster_id))
    return _Cluster(network_type, node_os, facts, pools)


def _render(args: CalicoArgs, cluster: _Cluster) -> tuple[RenderResult, TyphaChoice, PodCidrChoice]:
    """The manifest, fetched, verified and edited for the cluster, with Typha and the pod CIDR decided."""
    typha = choose_typha(args.typha, cluster.network_type, replicas=args.typha_replicas,
                         node_count=cluster.pools.node_count if cluster.pools else None)
    pod_cidr = choose_pod_cidr(cluster.network_type, args.pod_cidr, cluster.facts.pods_cidr if cluster.facts else None)
    rendered = render(
        args.calico_version, cluster.network_type, cluster.node_os, manifest_sha256=args.manifest_sha256,
        image_registry=args.image_registry, pod_cidr=pod_cidr.cidr, typha=typha.typha_manifest,
        typha_replicas=args.typha_replicas, calico_node_max_unavailable=args.calico_node_max_unavailable,
        fetch_options=FetchOptions(mirror=args.manifest_mirror, offline=args.manifest_offline,
                                   timeout=args.manifest_timeout_seconds))
    check_supported(rendered.objects, rendered.calico_version)
    return rendered, typha, pod_cidr


_SHOWN: dict[type[CalicoError], type[CalicoError]] = {}


def shown_as_message(exc: CalicoError) -> CalicoError:
    """``exc`` as an instance of its own class and of ``pulumi.RunError``: a program it ends shows its message alone,
    without a Python traceback (Pulumi's Python runtime prints one for any other exception), while ``except
    ConfigurationError`` and the like still catch it."""
    cls = type(exc)
    if isinstance(exc, pulumi.RunError):
        return exc
    if cls not in _SHOWN:
        _SHOWN[cls] = type(cls.__name__, (cls, pulumi.RunError), {"__module__": cls.__module__, "__doc__": cls.__doc__,
                                                                  "__qualname__": cls.__qualname__})
    shown = _SHOWN[cls].__new__(_SHOWN[cls])
    shown.args, shown.__dict__ = exc.args, dict(exc.__dict__)
    return shown


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
