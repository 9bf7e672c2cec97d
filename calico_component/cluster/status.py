"""Calico's status on a cluster, read-only: the reads (``read``) and a pure function turning their JSON into a report."""

from __future__ import annotations

import json
import urllib.parse
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigurationError
from ..manifest.releases import check_compatibility, kubernetes_minor
from .kube import Kube, refused, session
from .ownership import OWNER_ANNOTATION, PULUMI_MANAGER_PREFIX
from .retired import image_version
from .rollout import glance, rolled_out

NAMESPACE, NAME = "kube-system", "calico-node"
NOT_INSTALLED = f"Calico is not installed (no DaemonSet {NAMESPACE}/{NAME})"
#: calico-node's env settings that decide whether Felix enforces anything on OKE (docs/verify.md names why).
FELIX_SETTINGS = ("FELIX_INTERFACEPREFIX", "FELIX_CHAININSERTMODE", "FELIX_IPTABLESBACKEND")
FELIX_DEFAULT = "unset (Felix's default)"
BY_HAND = "installed by hand or by another tool (no calico-oke mark)"
#: How many nodes without a ready calico-node are named (the count says how many more there are).
LISTED_NODES = 10


@dataclass(frozen=True)
class Reads:
    """What the report is made of, as the API server answered: ``/version``, the calico-node DaemonSet (None: absent),
    every Node, and the pods the DaemonSet's selector picks."""

    version: Mapping[str, Any]
    daemonset: Mapping[str, Any] | None
    nodes: Sequence[Mapping[str, Any]]
    pods: Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class Status:
    """The report's lines, and why Calico is not healthy (None: it is)."""

    lines: tuple[str, ...]
    problem: str | None

    @property
    def healthy(self) -> bool:
        return self.problem is None


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _ready(pod: Mapping[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _owned_by(pod: Mapping[str, Any], uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in _meta(pod).get("ownerReferences") or [])


def _container(daemonset: Mapping[str, Any]) -> Mapping[str, Any]:
    """calico-node's container of the DaemonSet's pod template (the first one when none is named calico-node)."""
    containers = ((((daemonset.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers")) or [{}]
    return next((c for c in containers if c.get("name") == NAME), containers[0])


def release_lines(image: str, kubernetes: str) -> tuple[str, str]:
    """The release calico-node runs (from its image tag), and whether Oracle's table lists it for this Kubernetes."""
    found = image_version(image)
    if found is None:
        return (f"Calico: unknown release (calico-node's image {image or '(none)'} has no version tag)",
                "Oracle's table: cannot tell without the release")
    release = ".".join(map(str, found))
    try:
        minor = kubernetes_minor(kubernetes)
    except ConfigurationError:
        return f"Calico: {release} (image {image})", f"Oracle's table: cannot tell (Kubernetes version {kubernetes!r})"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the reason is reported here, not warned
        untested = check_compatibility(release, kubernetes)
    verdict = f"tested by Oracle on Kubernetes {minor}" if untested is None else f"not tested: {untested}"
    return f"Calico: {release} (image {image})", f"Oracle's table: Calico {release} {verdict}"


def installer_line(daemonset: Mapping[str, Any]) -> str:
    """Who installed Calico: the calico-oke stack its mark names, or a hand install / another tool."""
    meta = _meta(daemonset)
    stack = (meta.get("annotations") or {}).get(OWNER_ANNOTATION)
    if stack:
        return f"Installed by: calico-oke, managed by stack {stack} ({OWNER_ANNOTATION})"
    managers = {str(m.get("manager", "")) for m in meta.get("managedFields") or []}
    if any(m.startswith(PULUMI_MANAGER_PREFIX) for m in managers):
        return (f"Installed by: {BY_HAND}; Pulumi applied it (a calico-oke stack from before the mark adds the mark "
                "at its next up)")
    return f"Installed by: {BY_HAND}"


def felix_lines(daemonset: Mapping[str, Any]) -> list[str]:
    """Each Felix setting of FELIX_SETTINGS as calico-node's env configures it: its value, where it comes from, or
    unset."""
    env = {str(e.get("name")): e for e in _container(daemonset).get("env") or [] if isinstance(e, dict)}
    lines = ["Felix settings (calico-node's env):"]
    for name in FELIX_SETTINGS:
        entry = env.get(name)
        if entry is None:
            shown = FELIX_DEFAULT
        elif "value" in entry:
            shown = str(entry["value"])
        else:
            ref = (entry.get("valueFrom") or {}).get("configMapKeyRef") or {}
            shown = f"from ConfigMap {ref.get('name')} key {ref.get('key')}" if ref else "set from elsewhere (valueFrom)"
        lines.append(f"  {name}: {shown}")
    return lines


def _waiting(pod: Mapping[str, Any]) -> str:
    """Why a pod is not ready, as briefly as its status says."""
    status = pod.get("status") or {}
    for container in status.get("containerStatuses") or []:
        reason = ((container.get("state") or {}).get("waiting") or {}).get("reason")
        if reason:
            return f"pod {_meta(pod).get('name')}: {reason}"
    return f"pod {_meta(pod).get('name')}: {status.get('phase') or 'Pending'}, not ready"


def _listing(items: Sequence[str]) -> str:
    return ", ".join(items[:LISTED_NODES]) + (f" and {len(items) - LISTED_NODES} more" if len(items) > LISTED_NODES else "")


def readiness(daemonset: Mapping[str, Any], nodes: Sequence[Mapping[str, Any]],
              pods: Sequence[Mapping[str, Any]]) -> tuple[str, list[str]]:
    """The readiness line, and each node without a ready calico-node pod of this DaemonSet with why (no pod, or the
    pod's state)."""
    uid = str(_meta(daemonset).get("uid") or "")
    mine = [p for p in pods if _owned_by(p, uid) and not _meta(p).get("deletionTimestamp")]
    names = sorted(str(_meta(n).get("name")) for n in nodes)
    ready = {str((p.get("spec") or {}).get("nodeName")) for p in mine if _ready(p)}
    by_node = {str((p.get("spec") or {}).get("nodeName")): p for p in mine}
    missing = [n for n in names if n not in ready]
    why = [f"{n} ({_waiting(by_node[n]) if n in by_node else 'no calico-node pod'})" for n in missing]
    line = f"Ready: calico-node ready on {len(names) - len(missing)} of {len(names)} nodes"
    if missing:
        line += f"; without a ready calico-node: {_listing(why)}"
    elif not names:
        line += " (the cluster has no nodes)"
    return line, why


def rollout_counts(daemonset: Mapping[str, Any]) -> tuple[str, bool]:
    """The DaemonSet's rollout as its status counts it (``3 desired, 3 updated, 3 ready, 3 available``), and whether
    it is complete (every pod updated and available, the controller caught up with the template)."""
    status = daemonset.get("status") or {}
    counts = ", ".join(f"{int(status.get(field) or 0)} {label}" for label, field in (
        ("desired", "desiredNumberScheduled"), ("updated", "updatedNumberScheduled"), ("ready", "numberReady"),
        ("available", "numberAvailable")))
    if int(status.get("observedGeneration") or 0) < int(_meta(daemonset).get("generation") or 0):
        counts += "; the DaemonSet controller has not seen its latest template yet"
    return counts, glance(daemonset).settled


def report(reads: Reads) -> Status:
    """The report of ``reads``: pure, every line from the JSON the API server answered."""
    kubernetes = str(reads.version.get("gitVersion") or "unknown")
    lines = [f"Kubernetes: {kubernetes}"]
    ds = reads.daemonset
    if ds is None:
        return Status(tuple(lines), NOT_INSTALLED)
    image = str(_container(ds).get("image") or "")
    ready_line, why = readiness(ds, reads.nodes, reads.pods)
    counts, complete = rollout_counts(ds)
    lines += [*release_lines(image, kubernetes), installer_line(ds), ready_line, *felix_lines(ds),
              f"Rollout: {counts}: {'complete' if complete else 'not complete'}"]
    problems = []
    if why:
        problems.append(f"calico-node is not ready on {len(why)} of {len(reads.nodes)} nodes: {_listing(why)}")
    if not complete and not (why and rolled_out(ds)):  # every pod updated: the nodes above are why it is short
        problems.append(f"calico-node's rollout is not complete ({counts})")
    if problems:
        return Status(tuple(lines), "; ".join(problems))
    lines.append("status: healthy (calico-node ready on every node, its rollout complete)")
    return Status(tuple(lines), None)


def _get(kube: Kube, path: str, what: str, *, absent_ok: bool = False) -> Any:
    """The JSON answer to one GET; None for a 404 when ``absent_ok``; any other error answer names ``what``."""
    status, body = kube.get(path)
    if status == 404 and absent_ok:
        return None
    if status >= 300:
        raise refused(kube.server, status, f"{what} to show Calico's status")
    return json.loads(body)


def read(kube: Kube) -> Reads:
    """The reads of ``report``: four GETs, no change to the cluster."""
    version = _get(kube, "/version", "read the Kubernetes version (GET /version)")
    ds = _get(kube, f"/apis/apps/v1/namespaces/{NAMESPACE}/daemonsets/{NAME}", f"read DaemonSet {NAMESPACE}/{NAME}",
              absent_ok=True)
    if ds is None:
        return Reads(version, None, [], [])
    nodes = _get(kube, "/api/v1/nodes", "list nodes")["items"]
    labels = ((ds.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    selector = urllib.parse.quote(",".join(f"{k}={v}" for k, v in sorted(labels.items())), safe="")
    pods = _get(kube, f"/api/v1/namespaces/{NAMESPACE}/pods?labelSelector={selector}",
                f"list the pods of DaemonSet {NAMESPACE}/{NAME}")["items"]
    return Reads(version, ds, nodes, pods)


def check(kubeconfig: str) -> Status:
    """Read the cluster of ``kubeconfig`` (its contents, never the current kube context) and report."""
    with session(kubeconfig, "read Calico's status") as kube:
        return report(read(kube))

