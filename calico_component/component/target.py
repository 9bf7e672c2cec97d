"""Which cluster a Calico component acts on, settled once before anything is registered, and used by every step:
the Calico objects' providers, flannel removal, the cluster checks, the rollout wait, the policy check.

- ``kubeconfig`` given: that cluster. With ``cluster_id`` too, both must name the same cluster (the kubeconfig's
  token command names an OKE cluster, or its server is one of OKE's endpoints for ``cluster_id``), else preview fails
  naming both.
- ``cluster_id`` alone: the kubeconfig OKE serves for it, through the component's OCI settings.
- neither, with a Kubernetes provider in the resource options: that provider, the user's explicit choice; the
  component then cannot read the cluster itself (no checks, no flannel removal, no wait of its own, no policy check).
- none of these: refused. The ambient kube context is never used.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import pulumi

from ..cluster import oke
from ..cluster.kube import identity, oke_cluster_id, server_of
from ..cluster.oci_api import OciSettings
from ..credentials import load_kubeconfig
from ..errors import ConfigurationError, GuardError
from .args import CalicoArgs
from .providers import checked_kubeconfig

#: The Container Engine endpoint every OCI call goes to when ``oci_endpoint`` is not set (a proxy, a test stand-in).
OCI_ENDPOINT_ENV = "CALICO_OKE_OCI_ENDPOINT"
Source = Literal["kubeconfig", "oke", "providers"]


class TwoClustersError(GuardError):
    """``cluster_id`` and ``kubeconfig`` name two different clusters."""


@dataclass(frozen=True)
class Target:
    """The one cluster: its kubeconfig (a secret; None when only the providers of the options reach it), its OKE
    cluster id if any, the identity its Kubernetes providers are keyed to, and where it came from."""

    kubeconfig: pulumi.Output[str] | None
    cluster_id: pulumi.Input[str] | None
    identity: pulumi.Input[str] | None
    source: Source


def oci_settings(args: CalicoArgs) -> OciSettings:
    """The component's one OCI configuration: every OCI call (lookups, kubeconfig, the add-on step) uses it."""
    return OciSettings(auth=args.oci_auth, profile=args.oci_profile, config_file=args.oci_config_file,
                       region=args.oci_region, endpoint=args.oci_endpoint or os.environ.get(OCI_ENDPOINT_ENV) or None)


def kubernetes_provider_given(opts: pulumi.ResourceOptions | None) -> bool:
    """Whether the resource options (or the parent they name) pass a Kubernetes provider: the user's explicit choice
    of cluster, which the component then uses for its objects. Looked up as Pulumi gives one to the component's
    Kubernetes children: the ``kubernetes`` entry of the parent's providers, of ``opts.providers`` (a list is keyed by
    package), or ``opts.provider`` by its package. A Kubernetes provider under another key is not used for them (they
    would get the default provider, the current kube context), so it names no cluster; nor does any other package's."""
    if opts is None:
        return False
    chosen: dict[object, object] = dict(getattr(opts.parent, "_providers", None) or {})
    given: dict[object, object] = {}
    if isinstance(opts.providers, Mapping):
        given.update(opts.providers)
    elif opts.providers:
        given.update((getattr(p, "package", None), p) for p in opts.providers)
    if opts.provider is not None:
        given.setdefault(getattr(opts.provider, "package", None), opts.provider)
    chosen.update(given)
    return getattr(chosen.get("kubernetes"), "package", None) == "kubernetes"


def refuse_no_cluster(name: str, args: CalicoArgs, opts: pulumi.ResourceOptions | None) -> None:
    """Before anything is registered: a component that names no cluster is refused (never the ambient context)."""
    if args.kubeconfig is None and args.cluster_id is None and not kubernetes_provider_given(opts):
        raise ConfigurationError(
            f"Calico {name!r} names no cluster: pass kubeconfig (the contents of the cluster's kubeconfig, kept as a "
            "secret), cluster_id (an OKE cluster OCID: the kubeconfig OKE serves for it is used), or a Kubernetes "
            "provider in the resource options (opts=ResourceOptions(providers={'kubernetes': provider})). calico-oke "
            "never uses the current kube context.")


def _host(server: str) -> str:
    """``https://10.0.0.5:6443/`` -> ``10.0.0.5:6443`` (port 443 when the URL has none)."""
    rest = server.split("://", 1)[-1].split("/", 1)[0]
    return rest if ":" in rest.rsplit("]", 1)[-1] else f"{rest}:443"


def disagreement(cluster_id: str, kubeconfig: str, endpoints: tuple[str, ...]) -> str | None:
    """Why ``cluster_id`` and ``kubeconfig`` name two clusters, or None when they name one (or cannot be told apart:
    no token command naming a cluster, and no endpoints from OKE)."""
    doc = load_kubeconfig(kubeconfig)
    named = oke_cluster_id(doc)
    if named is not None:
        if named == cluster_id:
            return None
        why = f"the kubeconfig's token command (`oci ce cluster generate-token`) names cluster {named}"
    else:
        server = _host(server_of(doc))
        if not endpoints or server in {_host(e) for e in endpoints}:
            return None
        why = f"the kubeconfig's server {server} is none of OKE's endpoints for it ({', '.join(endpoints)})"
    return (f"cluster_id {cluster_id} and kubeconfig name two different clusters: {why}. calico-oke acts on one "
            "cluster (flannel removal through OKE, Calico through the kubeconfig): pass the kubeconfig of that "
            "cluster, or leave kubeconfig out to use the one OKE serves for cluster_id. Nothing was changed.")


def resolve(name: str, args: CalicoArgs, settings: OciSettings, endpoints: tuple[str, ...] | None = None) -> Target:
    """The component's target (see the module docstring). ``endpoints``: OKE's API endpoints for a known
    ``cluster_id``, when the component read the cluster anyway (else they are read here if needed)."""
    cluster_id = args.cluster_id
    if args.kubeconfig is not None:
        kubeconfig = checked_kubeconfig(args.kubeconfig)
        if isinstance(cluster_id, str) and isinstance(args.kubeconfig, str):
            found = endpoints if endpoints is not None or oke_cluster_id(load_kubeconfig(args.kubeconfig)) else \
                oke.read_cluster(settings, cluster_id).endpoints
            problem = disagreement(cluster_id, args.kubeconfig, found or ())
            if problem:
                raise TwoClustersError(problem)
        elif cluster_id is not None:
            kubeconfig = _agreeing(kubeconfig, cluster_id, settings, endpoints)
        # Which cluster, not who may reach it: shown in previews as it is (a server URL and a CA digest, or an OCID).
        key: pulumi.Input[str] = cluster_id if cluster_id is not None else pulumi.Output.unsecret(
            kubeconfig.apply(identity))
        return Target(kubeconfig, cluster_id, key, "kubeconfig")
    if cluster_id is not None:
        served = pulumi.Output.from_input(cluster_id).apply(lambda cid: oke.kubeconfig(settings, str(cid)))
        return Target(pulumi.Output.secret(served), cluster_id, cluster_id, "oke")
    return Target(None, None, None, "providers")


def _agreeing(kubeconfig: pulumi.Output[str], cluster_id: pulumi.Input[str], settings: OciSettings,
              endpoints: tuple[str, ...] | None) -> pulumi.Output[str]:
    """The kubeconfig, once it was found to name ``cluster_id``'s cluster (read when both are known)."""
    def check(pair: list[str]) -> str:
        cid, text = pair
        doc = load_kubeconfig(text)
        found = endpoints
        if oke_cluster_id(doc) is None and found is None:
            found = oke.read_cluster(settings, cid).endpoints
        problem = disagreement(cid, text, found or ())
        if problem:
            raise pulumi.RunError(problem)
        return text

    return pulumi.Output.secret(pulumi.Output.all(cluster_id, kubeconfig).apply(check))
