"""The Kubernetes providers the component creates, and the settings its in-place and adoption guarantees rely on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from ..credentials import load_kubeconfig

#: Provider settings every Calico object relies on (docs/component.md, "Providers and in-place changes"):
#: server-side apply, so drift is repaired field by field; ConfigMaps and Secrets updated in
#: place, because pulumi-kubernetes otherwise replaces them on a data change, and a fixed-name
#: replacement deletes ``calico-config`` before the new one exists.
IN_PLACE_SETTINGS: dict[str, bool] = {
    "enable_server_side_apply": True,
    "enable_config_map_mutable": True,
    "enable_secret_mutable": True,
}


@dataclass(frozen=True)
class KubernetesOptions:
    """Resource options for the two groups of children: CRDs, and every other object."""

    crds: pulumi.ResourceOptions
    objects: pulumi.ResourceOptions


def checked_kubeconfig(kubeconfig: pulumi.Input[str]) -> pulumi.Output[str]:
    """The kubeconfig as a secret Output, checked to be kubeconfig contents (errors never quote it).

    A plain string is checked at once, so a bad one fails the constructor before anything is
    registered; an Output is checked when its value is known.
    """
    value: pulumi.Output[str] = pulumi.Output.from_input(kubeconfig)
    if isinstance(kubeconfig, str):
        load_kubeconfig(kubeconfig)
    else:
        value = value.apply(_checked)
    return pulumi.Output.secret(value)


def _checked(text: str) -> str:
    load_kubeconfig(text)
    return text


def provider_args(
    kubeconfig: pulumi.Output[str], cluster: pulumi.Input[str] | None, *, upsert: bool
) -> dict[str, Any]:
    """Keyword arguments of one ``kubernetes.Provider``.

    ``cluster`` (the target's identity: its OKE cluster id, else the kubeconfig's server and CA) becomes
    ``cluster_identifier``: the provider is then replaced only when the cluster changes, never because the kubeconfig
    did (a rotated token, a new endpoint), which would otherwise replace every Calico object. ``upsert`` sets
    ``upsert_existing_objects`` (pulumi-kubernetes 4.29+: a create of an object that already exists updates it
    instead of failing with AlreadyExists).
    """
    args: dict[str, Any] = {"kubeconfig": kubeconfig, **IN_PLACE_SETTINGS, "upsert_existing_objects": upsert}
    if cluster is not None:
        args["cluster_identifier"] = cluster
    return args


def create_providers(
    name: str,
    kubeconfig: pulumi.Output[str] | None,
    cluster: pulumi.Input[str] | None,
    *,
    adopt_existing: bool,
    parent: pulumi.Resource,
) -> KubernetesOptions:
    """Child providers when a (checked, secret) kubeconfig is given; otherwise the providers of the component's options.

    Two providers, because creates of the two groups need different answers to "the object
    already exists": CRDs are retained on delete (so a reinstall or a downgrade-then-upgrade
    finds them) and are always taken over; every other object is taken over only with
    ``adopt_existing``, so a rename that slipped past an alias fails instead of deleting the live
    object right after upserting it.
    """
    child = pulumi.ResourceOptions(parent=parent)
    if kubeconfig is None:
        if adopt_existing:
            pulumi.log.warn(
                "adopt_existing only configures the Kubernetes providers the component creates (kubeconfig=...); "
                "the provider passed in opts needs upsert_existing_objects=True itself (pulumi-kubernetes 4.29+)",
                resource=parent,
            )
        return KubernetesOptions(crds=child, objects=child)
    import pulumi_kubernetes as k8s

    objects = k8s.Provider(f"{name}-k8s", **provider_args(kubeconfig, cluster, upsert=adopt_existing), opts=child)
    crds = k8s.Provider(f"{name}-k8s-crds", **provider_args(kubeconfig, cluster, upsert=True), opts=child)
    return KubernetesOptions(
        crds=pulumi.ResourceOptions(parent=parent, provider=crds),
        objects=pulumi.ResourceOptions(parent=parent, provider=objects),
    )
