"""Who manages the Calico objects already on a cluster: this stack, another stack, or a hand install.

Every object the component deploys carries ``calico-oke.io/stack: <organization>/<project>/<stack>``.
Before any provider is configured (so before anything is created, and at ``pulumi preview``), the
component reads the live copies of the objects it is about to manage and refuses when another stack
manages them, or when they were installed by hand and ``adopt_existing`` was not given. CRDs are not
looked at: they are kept on ``destroy`` and taken over by whichever stack installs next. Objects with
no mark that Pulumi applied (a ``pulumi-kubernetes`` field manager) are this stack's own from a release
before the mark; the next ``up`` marks them.
"""

from __future__ import annotations

import concurrent.futures
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..errors import CalicoError, ClusterAuthError, GuardError
from ..manifest.parsing import K8sObject, object_key
from .kube import Kube, refused, session

OWNER_ANNOTATION = "calico-oke.io/stack"
#: Field managers pulumi-kubernetes writes with (``pulumi-kubernetes`` for creates, ``pulumi-kubernetes-<id>`` for SSA).
PULUMI_MANAGER_PREFIX = "pulumi-kubernetes"


class OwnershipError(GuardError):
    """Calico's objects on the cluster are managed by another stack, or were installed by hand (no adopt_existing)."""


@dataclass(frozen=True)
class LiveObject:
    """One object as the API server has it: who marked it, and whether Pulumi ever applied it."""

    kind: str
    namespace: str
    name: str
    owner: str | None
    pulumi_managed: bool

    @property
    def label(self) -> str:
        return f"{self.kind} {self.namespace + '/' if self.namespace else ''}{self.name}"


def _summary(objects: Sequence[LiveObject]) -> str:
    """``DaemonSet kube-system/calico-node and 33 other Calico objects`` (calico-node named first when present)."""
    first = next((o for o in objects if o.kind == "DaemonSet" and o.name == "calico-node"), objects[0])
    others = len(objects) - 1
    return first.label + (f" and {others} other Calico object{'s' if others != 1 else ''}" if others else "")


NEVER_TWO = ("Two stacks must never manage one cluster's Calico: destroying either would delete Calico under the "
             "other. Nothing was changed.")


def same_stack(mark: str, me: str) -> bool:
    """Whether an object's mark is this stack's: its project and stack name match. The organization is not compared:
    it changes when a stack moves between backends (the file backend's ``organization``, a Pulumi Cloud org)."""
    return mark.split("/")[-2:] == me.split("/")[-2:]


def ownership_problem(live: Sequence[LiveObject], me: str, adopt_existing: bool) -> str | None:
    """Why this stack must not manage ``live`` (the existing copies of its objects), or None when it may."""
    others = [o for o in live if o.owner and not same_stack(o.owner, me)]
    if others:
        owners = ", ".join(sorted({str(o.owner) for o in others}))
        return (f"Calico is already installed on this cluster and this stack ({me}) does not manage it: "
                f"{_summary(others)} exist, managed by stack {owners} ({OWNER_ANNOTATION}). Manage Calico from that "
                f"stack, or destroy it there first; adoptExisting is only for a Calico installed by hand, not for "
                f"another stack's. {NEVER_TWO}")
    by_hand = [o for o in live if not o.owner and not o.pulumi_managed]
    if by_hand and not adopt_existing:
        return (f"Calico is already installed on this cluster and this stack ({me}) does not manage it: "
                f"{_summary(by_hand)} exist with no calico-oke stack's mark, as a hand install (kubectl apply) or "
                f"another tool leaves them. If it was installed by hand, set adoptExisting (adopt_existing=True) to "
                f"take it over; if another stack or tool manages it, manage Calico from there. {NEVER_TWO}")
    return None


def _path(obj: K8sObject) -> str:
    """The REST path of one object (every kind the component deploys is its lower-cased kind plus ``s``)."""
    kind, namespace, name = object_key(obj)
    api = obj.get("apiVersion", "")
    base = f"/api/{api}" if "/" not in api else f"/apis/{api}"
    scope = f"/namespaces/{namespace}" if namespace else ""
    return f"{base}{scope}/{kind.lower()}s/{name}"


def _resource(obj: K8sObject) -> str:
    kind, namespace, _ = object_key(obj)
    group = obj.get("apiVersion", "").rpartition("/")[0]
    return f"{kind.lower()}s{'.' + group if group else ''}" + (f" in namespace {namespace}" if namespace else "")


def _refused(status: int, obj: K8sObject, purpose: str, server: str) -> CalicoError:
    """The error for an answer that is not 200 or 404: what went wrong and what the check needs."""
    kind, _, name = object_key(obj)
    if status == 403:
        return ClusterAuthError(
            f"the kubeconfig's user may not read {kind} {name} (HTTP 403) to {purpose}: the check needs `get` on "
            f"{_resource(obj)} (and on every kind calico-oke deploys: daemonsets, deployments, serviceaccounts, "
            "configmaps, services, poddisruptionbudgets, clusterroles, clusterrolebindings, roles, rolebindings). "
            "Grant them, or use a kubeconfig with cluster-admin. Nothing was changed", status)
    return refused(server, status, f"read {kind} {name} to {purpose}")


def _read(kube: Kube, obj: K8sObject) -> LiveObject | None:
    kind, namespace, name = object_key(obj)
    status, body = kube.get(_path(obj))
    if status == 404:
        return None
    if status >= 300:
        raise _refused(status, obj, "check who manages Calico", kube.server)
    meta = json.loads(body)["metadata"]
    managers = {str(m.get("manager", "")) for m in meta.get("managedFields") or []}
    return LiveObject(kind, namespace, name, (meta.get("annotations") or {}).get(OWNER_ANNOTATION),
                      any(m.startswith(PULUMI_MANAGER_PREFIX) for m in managers))


def read_live(kube: Kube, objects: Iterable[K8sObject]) -> list[LiveObject]:
    """The live copies of ``objects`` that exist (CRDs are not read), a few requests at a time."""
    wanted = [o for o in objects if o.get("kind") != "CustomResourceDefinition"]
    if not wanted:
        return []
    # One request first: an unreachable or refusing server is reported once, not by a burst of parallel timeouts.
    first = _read(kube, wanted[0])
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        found = [first, *pool.map(lambda o: _read(kube, o), wanted[1:])]
    return [o for o in found if o is not None]


def check_cluster(kubeconfig: str, objects: Sequence[K8sObject], me: str, adopt_existing: bool) -> None:
    """Read the cluster and raise OwnershipError when this stack must not manage its Calico objects there."""
    with session(kubeconfig, "check who manages Calico") as kube:
        problem = ownership_problem(read_live(kube, objects), me, adopt_existing)
    if problem:
        raise OwnershipError(problem)
