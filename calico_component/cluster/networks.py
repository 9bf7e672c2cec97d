"""Another network provider on the cluster: a Calico the Tigera operator manages, a calico-node outside kube-system,
Cilium, Antrea, kube-router or Weave Net. Installing Calico from Oracle's manifests beside any of them puts a second
network agent on every node, so the component refuses at preview. A Calico installed by hand from the same manifest
(kube-system/calico-node) is not another provider: the ownership check (``ownership``) decides about it."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import GuardError
from .kube import Kube, refused, session

#: DaemonSets (by name) of the network providers calico-oke knows, and what they are.
AGENTS = {"cilium": "Cilium", "antrea-agent": "Antrea", "kube-router": "kube-router", "weave-net": "Weave Net",
          "calico-node": "Calico"}
#: Where Calico's own manifests put calico-node: anywhere else it was installed another way (the operator's is in
#: calico-system).
MANIFEST_NAMESPACE = "kube-system"
OPERATOR_NAMESPACES = ("tigera-operator", "calico-system")
INSTALLATIONS = "/apis/operator.tigera.io/v1/installations"


class OtherNetworkProviderError(GuardError):
    """Another network provider runs on the cluster."""


@dataclass(frozen=True)
class Found:
    """What was found: a provider's name and where."""

    provider: str
    where: str


def found_in(daemonsets: Sequence[Mapping[str, Any]], namespaces: Sequence[str],
             installations: Sequence[str]) -> list[Found]:
    """The other network providers that the cluster's DaemonSets, namespaces and operator Installations show."""
    found = [Found("Calico managed by the Tigera operator", f"namespace {ns}") for ns in namespaces]
    found += [Found("Calico managed by the Tigera operator", f"Installation {name}") for name in installations]
    for ds in daemonsets:
        meta = ds.get("metadata") or {}
        name, namespace = str(meta.get("name") or ""), str(meta.get("namespace") or "")
        provider = AGENTS.get(name)
        if provider is None or (name == "calico-node" and namespace == MANIFEST_NAMESPACE):
            continue
        found.append(Found(provider, f"DaemonSet {namespace}/{name}"))
    return found


def problem(found: Sequence[Found]) -> str | None:
    """Why Calico must not be installed beside ``found``, and what to do; None when nothing was found."""
    if not found:
        return None
    listing = "; ".join(f"{f.provider} ({f.where})" for f in found)
    operator = any("operator" in f.provider for f in found)
    fix = ("Manage that Calico with the Tigera operator, or uninstall it (its Installation and the tigera-operator) "
           "before installing Calico with calico-oke" if operator else
           "Remove it first (a cluster has one network provider), or do not install Calico on this cluster")
    return (f"another network provider runs on this cluster: {listing}. calico-oke installs Calico from Oracle's "
            f"manifests into kube-system, which would put a second network agent on every node. {fix}. Nothing was "
            "changed.")


def read(kube: Kube) -> list[Found]:
    """The other network providers on the cluster of ``kube``."""
    status, body = kube.get("/apis/apps/v1/daemonsets")
    if status >= 300:
        raise refused(kube.server, status, "list the cluster's DaemonSets to look for another network provider")
    daemonsets = json.loads(body).get("items") or []
    namespaces = []
    for namespace in OPERATOR_NAMESPACES:
        status, _ = kube.get(f"/api/v1/namespaces/{namespace}")
        if status < 300:
            namespaces.append(namespace)
        elif status != 404:
            raise refused(kube.server, status, f"read namespace {namespace} to look for the Tigera operator")
    status, body = kube.get(INSTALLATIONS)
    installations = [str(i["metadata"]["name"]) for i in json.loads(body).get("items") or []] if status < 300 else []
    if status >= 300 and status != 404:
        raise refused(kube.server, status, "list the Tigera operator's Installations")
    return found_in(daemonsets, namespaces, installations)


def check_cluster(kubeconfig: str) -> None:
    """Raise OtherNetworkProviderError when another network provider runs on the cluster of ``kubeconfig``."""
    with session(kubeconfig, "look for another network provider") as kube:
        why = problem(read(kube))
    if why:
        raise OtherNetworkProviderError(why)
