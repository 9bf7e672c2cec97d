"""Policy kinds a Calico release stops enforcing: such objects on the cluster stop an install or upgrade at preview.

Calico 3.32 no longer enforces AdminNetworkPolicy and BaselineAdminNetworkPolicy (upstream's release notes: remove
them before upgrading; ClusterNetworkPolicy replaces them). Their CRDs stay on the cluster (calico-oke never deletes
a CRD), so the API server keeps accepting the objects while nothing enforces them: an upgrade would drop that policy
silently. The pure part here decides; ``check_cluster`` reads the cluster with the component's kubeconfig.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import GuardError
from .kube import Kube, refused, session

#: How many objects a message names before it only counts.
NAMED = 5
_TAG_RE = re.compile(r":v?(\d+)\.(\d+)\.(\d+)(?:@.*)?$")


class RetiredPolicyError(GuardError):
    """The cluster holds policy objects the Calico release being installed no longer enforces."""


@dataclass(frozen=True)
class RetiredKind:
    """A policy kind Calico enforced up to (not including) ``retired_in``."""

    kind: str
    group: str
    version: str
    plural: str
    retired_in: tuple[int, int, int]

    @property
    def path(self) -> str:
        """The REST path that lists every object of the kind (all of them are cluster-scoped)."""
        return f"/apis/{self.group}/{self.version}/{self.plural}"


RETIRED_POLICY_KINDS: tuple[RetiredKind, ...] = (
    RetiredKind("AdminNetworkPolicy", "policy.networking.k8s.io", "v1alpha1", "adminnetworkpolicies", (3, 32, 0)),
    RetiredKind("BaselineAdminNetworkPolicy", "policy.networking.k8s.io", "v1alpha1", "baselineadminnetworkpolicies",
                (3, 32, 0)),
)


@dataclass(frozen=True)
class Found:
    """One live object of a retired kind."""

    kind: RetiredKind
    name: str


def version_tuple(version: str) -> tuple[int, int, int]:
    """``3.32.0`` -> (3, 32, 0)."""
    major, minor, patch = (int(p) for p in version.lstrip("v").split("."))
    return major, minor, patch


def image_version(image: str) -> tuple[int, int, int] | None:
    """The release an image's tag names (``quay.io/calico/node:v3.32.0`` -> (3, 32, 0)), or None."""
    m = _TAG_RE.search(image)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def retired_kinds(calico_version: str) -> tuple[RetiredKind, ...]:
    """The kinds ``calico_version`` no longer enforces (none before 3.32)."""
    target = version_tuple(calico_version)
    return tuple(k for k in RETIRED_POLICY_KINDS if target >= k.retired_in)


def _listing(found: Sequence[Found]) -> str:
    named = ", ".join(f"{f.kind.kind} {f.name}" for f in found[:NAMED])
    rest = len(found) - NAMED
    return named + (f" and {rest} more" if rest > 0 else "")


def _remedy(kinds: Sequence[RetiredKind]) -> str:
    deletes = "; ".join(f"kubectl delete {k.plural}.{k.group} --all" for k in kinds)
    return (f"Move them to ClusterNetworkPolicy (policy.networking.k8s.io/v1alpha2, enforced from Calico 3.32) or to "
            f"Calico policy (GlobalNetworkPolicy), or delete them ({deletes})")


def retired_problem(found: Sequence[Found], calico_version: str, *, already_unenforced: bool = False) -> str | None:
    """Why installing ``calico_version`` would silently drop policy, or None when nothing would be lost.

    ``already_unenforced``: calico-node runs a release that retired them already, so this ``up`` loses nothing more;
    the text then says they are not enforced now (a warning), instead of refusing the install.
    """
    if not found:
        return None
    kinds = sorted({f.kind for f in found}, key=lambda k: k.kind)
    held = f"this cluster holds {len(found)} of them: {_listing(found)}"
    names = " or ".join(k.kind for k in kinds)
    if already_unenforced:
        return f"Calico {calico_version} does not enforce {names} objects, and {held}. They have no effect. {_remedy(kinds)}."
    return (f"Calico {calico_version} no longer enforces {names} objects, and {held}. Installing it would leave "
            f"{'it' if len(found) == 1 else 'them'} in place and silently unenforced. {_remedy(kinds)}, then run up "
            "again. Nothing was changed.")


def _names(kube: Kube, kind: RetiredKind) -> list[str]:
    """Names of the live objects of ``kind``; none when its CRD is not installed."""
    status, body = kube.get(kind.path)
    if status == 404:
        return []
    if status >= 300:
        raise refused(kube.server, status, f"list {kind.plural}.{kind.group} to check for policy Calico would no "
                      "longer enforce")
    return sorted(str(item["metadata"]["name"]) for item in json.loads(body).get("items") or [])


def _live_calico_node_version(kube: Kube) -> tuple[int, int, int] | None:
    """The release the cluster's calico-node DaemonSet runs now, or None (not installed, or no readable tag)."""
    status, body = kube.get("/apis/apps/v1/namespaces/kube-system/daemonsets/calico-node")
    if status >= 300:
        return None
    containers = json.loads(body)["spec"]["template"]["spec"].get("containers") or []
    image = next((c.get("image", "") for c in containers if c.get("name") == "calico-node"), "")
    return image_version(image)


@dataclass(frozen=True)
class RetiredCheck:
    """What the cluster holds: the retired objects, and whether calico-node already runs a release that drops them."""

    found: tuple[Found, ...]
    already_unenforced: bool


def read_cluster(kube: Kube, calico_version: str) -> RetiredCheck:
    """List the objects of every kind ``calico_version`` retires, and the live calico-node's release."""
    kinds = retired_kinds(calico_version)
    found = tuple(Found(k, name) for k in kinds for name in _names(kube, k))
    live = _live_calico_node_version(kube) if found else None
    return RetiredCheck(found, already_unenforced=live is not None and all(live >= k.retired_in for k in kinds))


def check_cluster(kubeconfig: str, calico_version: str) -> str | None:
    """Raise RetiredPolicyError when installing ``calico_version`` would silently drop policy on the cluster.

    When calico-node already runs a release that does not enforce them, this ``up`` loses nothing more: the
    problem is returned for a warning instead. None when the release retires nothing or nothing is found.
    """
    if not retired_kinds(calico_version):
        return None
    with session(kubeconfig, "check for policy Calico would no longer enforce") as kube:
        result = read_cluster(kube, calico_version)
    problem = retired_problem(result.found, calico_version, already_unenforced=result.already_unenforced)
    if problem and not result.already_unenforced:
        raise RetiredPolicyError(problem)
    return problem
