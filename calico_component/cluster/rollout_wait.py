"""Waiting for a DaemonSet's rollout with a progress deadline: done when every pod runs the current template and is
ready, however long a healthy rollout takes; failed when no more pods became ready for ``deadline`` seconds, naming
the pods and nodes that hold it up. Reads the cluster through ``kube``; the provider's ``RolloutAwaited`` runs it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from ..errors import ClusterAccessError, RolloutStalledError
from . import rollout
from .kube import REQUEST_TIMEOUT, Kube, session

#: How often the DaemonSet's status is read (one small request), and how often `up` is told how far it got. Its pods
#: are listed only when the status says the rollout is done, and to name the pods holding up a stalled one.
POLL_SECONDS = 1.0
REPORT_SECONDS = 30.0
_T = TypeVar("_T")


def _noop(_: str) -> None:
    return None


class Cluster:
    """The reads of the rollout, as plain JSON: a glance at the DaemonSet's status, or a look at its pods too."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    def daemonset(self, namespace: str, name: str) -> dict[str, Any]:
        response = self.kube.call(f"read DaemonSet {namespace}/{name}", lambda: self.kube.apps.read_namespaced_daemon_set(
            name, namespace, _preload_content=False, _request_timeout=REQUEST_TIMEOUT))
        data: dict[str, Any] = json.loads(response.data)
        return data

    def glance(self, namespace: str, name: str) -> rollout.Glance:
        return rollout.glance(self.daemonset(namespace, name))

    def look(self, namespace: str, name: str) -> rollout.Rollout:
        ds = self.daemonset(namespace, name)
        labels = (ds.get("spec") or {}).get("selector", {}).get("matchLabels") or {}
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        uid = ds["metadata"]["uid"]
        apps, core = self.kube.apps, self.kube.core
        revisions = json.loads(self.kube.call(f"list {namespace}/{name}'s ControllerRevisions", lambda: (
            apps.list_namespaced_controller_revision(namespace, label_selector=selector, _preload_content=False,
                                                     _request_timeout=REQUEST_TIMEOUT))).data)["items"]
        pods = json.loads(self.kube.call(f"list {namespace}/{name}'s pods", lambda: core.list_namespaced_pod(
            namespace, label_selector=selector, _preload_content=False, _request_timeout=REQUEST_TIMEOUT)).data)["items"]
        mine = [r for r in revisions if _owned(r, uid)]
        return rollout.observe(ds, [p for p in pods if _owned(p, uid)], rollout.newest_revision(mine))


def _owned(obj: Mapping[str, Any], uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in (obj.get("metadata") or {}).get("ownerReferences") or [])


def wait(cluster: Cluster, namespace: str, name: str, deadline: float, *, pause: Callable[[float], None] = time.sleep,
         clock: Callable[[], float] = time.monotonic, report: Callable[[str], None] = _noop) -> rollout.Rollout:
    """Glance until the status says the rollout is done and its pods confirm it; raise RolloutStalledError, naming the
    pods holding it up, once it made no progress for ``deadline``. A read without an answer, throttled or failing on
    the server's side counts as a poll without progress; a refused one (401, 403, 404) fails at once. ``pause``
    raises when the operation is stopped (Ctrl-C)."""
    progress = rollout.Progress(deadline=deadline, started=clock())
    reported, last = clock(), None
    while True:
        seen = _read(cluster.glance, namespace, name)
        now = clock()
        if seen is not None:
            done = _confirmed(cluster, namespace, name) if seen.settled else None
            if done is not None:
                return done
            progress.update(seen.current, seen.revision, now)
            last = seen
        if progress.expired(now):
            raise RolloutStalledError(_stalled(_look(cluster, namespace, name), last, deadline, namespace, name))
        if last is not None and now - reported >= REPORT_SECONDS:
            report(last.counts())
            reported = now
        pause(POLL_SECONDS)


def _confirmed(cluster: Cluster, namespace: str, name: str) -> rollout.Rollout | None:
    """The pods' own look when it shows every pod on the current template and ready; None when it does not yet."""
    seen = _look(cluster, namespace, name)
    return seen if seen is not None and seen.complete else None


def _read(read: Callable[[str, str], _T], namespace: str, name: str) -> _T | None:
    """One read; None when it did not get a usable answer worth waiting out (no answer, 429, 5xx); a refusal that
    will not go away by itself (401, 403, 404) is raised."""
    try:
        return read(namespace, name)
    except ClusterAccessError as exc:
        if exc.transient:
            return None
        raise


def _look(cluster: Cluster, namespace: str, name: str) -> rollout.Rollout | None:
    """A look at the DaemonSet and its pods; None when the API server did not answer."""
    return _read(cluster.look, namespace, name)


def _stalled(seen: rollout.Rollout | None, last: rollout.Glance | None, deadline: float, namespace: str,
             name: str) -> str:
    """The failure: from the pods' look; else (the listing unanswered) from the last glance's counts; else the API
    server never answered."""
    if seen is not None:
        return rollout.stalled_message(seen, deadline, namespace)
    if last is not None:
        return (f"{last.counts()}, and none more became ready for {deadline:g}s; its pods could not be listed to say "
                "which hold it up. The next `pulumi up` waits for this rollout again.")
    return (f"{namespace}/{name}: the API server did not answer for {deadline:g}s while waiting for the rollout; "
            "the next `pulumi up` waits for it again")


def rolled_out(kubeconfig: str, namespace: str, name: str) -> bool | None:
    """For ``pulumi refresh``: whether every pod of the DaemonSet runs its current template (an interrupted rollout
    is not), or None when the cluster could not be read (the recorded state is kept)."""
    try:
        with session(kubeconfig, f"read {namespace}/{name}'s rollout") as kube:
            ds = Cluster(kube).daemonset(namespace, name)
    except ClusterAccessError:
        return None
    return rollout.rolled_out(ds)


def run(kubeconfig: str, namespace: str, name: str, deadline: float, *, pause: Callable[[float], None],
        report: Callable[[str], None]) -> rollout.Rollout:
    """Wait for the rollout of ``namespace/name`` on the cluster of ``kubeconfig``; its last look when done."""
    with session(kubeconfig, f"wait for {namespace}/{name} to roll out") as kube:
        return wait(Cluster(kube), namespace, name, deadline, pause=pause, report=report)
