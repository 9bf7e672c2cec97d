"""Waiting for calico-node's rollout with a progress deadline, as a Pulumi resource: `up` returns when every pod
runs the current template and is ready, however long a healthy rollout takes, and fails when none more became ready
for ``await_timeout_seconds``, naming the pods and nodes that hold it up."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import pulumi
import pulumi.dynamic as dyn

from ..errors import RolloutStalledError
from . import rollout

#: How often the DaemonSet's status is read (one small request), and how often `up` is told how far it got. Its pods
#: are listed only when the status says the rollout is done, and to name the pods holding up a stalled one.
POLL_SECONDS = 1.0
REPORT_SECONDS = 30.0
#: The inputs whose change means a new rollout to wait for (the kubeconfig is not one).
REWAIT_KEYS = ("trigger", "namespace", "name", "deadline_seconds")
_REQUEST_TIMEOUT = (5.0, 30.0)
_T = TypeVar("_T")


def _json(response: Any) -> Any:
    return json.loads(response.data)


class Cluster:
    """The reads of the rollout, as plain JSON: a glance at the DaemonSet's status, or a look at its pods too."""

    def __init__(self, api_client: Any) -> None:
        from kubernetes import client

        self.apps: Any = client.AppsV1Api(api_client)
        self.core: Any = client.CoreV1Api(api_client)

    def _daemonset(self, namespace: str, name: str) -> Any:
        return _json(self.apps.read_namespaced_daemon_set(name, namespace, _preload_content=False,
                                                          _request_timeout=_REQUEST_TIMEOUT))

    def glance(self, namespace: str, name: str) -> rollout.Glance:
        return rollout.glance(self._daemonset(namespace, name))

    def look(self, namespace: str, name: str) -> rollout.Rollout:
        ds = self._daemonset(namespace, name)
        labels = (ds.get("spec") or {}).get("selector", {}).get("matchLabels") or {}
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        uid = ds["metadata"]["uid"]
        revisions = _json(self.apps.list_namespaced_controller_revision(
            namespace, label_selector=selector, _preload_content=False, _request_timeout=_REQUEST_TIMEOUT))["items"]
        pods = _json(self.core.list_namespaced_pod(namespace, label_selector=selector, _preload_content=False,
                                                   _request_timeout=_REQUEST_TIMEOUT))["items"]
        mine = [r for r in revisions if _owned(r, uid)]
        return rollout.observe(ds, [p for p in pods if _owned(p, uid)], rollout.newest_revision(mine))


def _owned(obj: Mapping[str, Any], uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in (obj.get("metadata") or {}).get("ownerReferences") or [])


def wait(cluster: Cluster, namespace: str, name: str, deadline: float, *, sleep: Callable[[float], None] = time.sleep,
         clock: Callable[[], float] = time.monotonic, report: Callable[[str], None] = print) -> rollout.Rollout:
    """Glance until the status says the rollout is done and its pods confirm it; raise RolloutStalledError, naming the
    pods holding it up, once it made no progress for ``deadline``."""
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
        sleep(POLL_SECONDS)


def _confirmed(cluster: Cluster, namespace: str, name: str) -> rollout.Rollout | None:
    """The pods' own look when it shows every pod on the current template and ready; None when it does not yet."""
    seen = _look(cluster, namespace, name)
    return seen if seen is not None and seen.complete else None


def _read(read: Callable[[str, str], _T], namespace: str, name: str) -> _T | None:
    """One read; None when the API server did not answer (counted as no progress, tried again)."""
    import urllib3

    try:
        return read(namespace, name)
    except (urllib3.exceptions.HTTPError, OSError):
        return None


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


def still_rolling(props: Mapping[str, Any]) -> bool:
    """True when the cluster shows the rollout unfinished (an earlier `up` failed or was interrupted while waiting,
    or the template was reverted to the recorded one mid-rollout): the next `up` waits for it again. A cluster that
    cannot be read here is left to the wait itself."""
    from kubernetes.client.exceptions import ApiException

    from ..errors import CalicoError
    from .ownership import api_client_for

    try:
        with api_client_for(str(props["kubeconfig"]), "read calico-node's rollout") as api_client:
            seen = _look(Cluster(api_client), str(props["namespace"]), str(props["name"]))
    except (CalicoError, ApiException, KeyError):
        return False
    return seen is not None and not seen.complete


def run(props: Mapping[str, Any]) -> dict[str, Any]:
    """Wait for the rollout named by the resource's inputs; its outputs say how it ended."""
    from .ownership import api_client_for

    namespace, name, deadline = str(props["namespace"]), str(props["name"]), float(props["deadline_seconds"])
    with api_client_for(str(props["kubeconfig"]), f"wait for {namespace}/{name} to roll out") as api_client:
        done = wait(Cluster(api_client), namespace, name, deadline)
    print(done.counts(), flush=True)
    return {**props, "pods": done.desired}


class RolloutProvider(dyn.ResourceProvider):
    """Create and update wait; delete has nothing to undo."""

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dyn.DiffResult:
        changed = [key for key in REWAIT_KEYS if olds.get(key) != news.get(key)]
        return dyn.DiffResult(changes=bool(changed) or still_rolling(olds), replaces=[], delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> dyn.CreateResult:
        return dyn.CreateResult(f"{props['namespace']}/{props['name']}", run(props))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> dyn.UpdateResult:
        return dyn.UpdateResult(run(news))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        return None


class RolloutAwaited(dyn.Resource):
    """The DaemonSet ``namespace/name`` runs its current template (``trigger``: its digest) ready on every node."""

    pods: pulumi.Output[int]

    def __init__(self, name: str, *, kubeconfig: pulumi.Input[str], namespace: str, daemonset: str, trigger: str,
                 deadline_seconds: float, opts: pulumi.ResourceOptions | None = None) -> None:
        props = {"kubeconfig": pulumi.Output.secret(kubeconfig), "namespace": namespace, "name": daemonset,
                 "trigger": trigger, "deadline_seconds": deadline_seconds, "pods": None}
        super().__init__(RolloutProvider(), name, props, pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(additional_secret_outputs=["kubeconfig"])))
