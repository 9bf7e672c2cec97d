"""calico-node's rollout as progress, not as a total time: how many pods run the current template and are ready,
which pods hold it up and why, and whether the rollout stopped progressing. Pure: no I/O, no pulumi."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: The label a DaemonSet's controller puts on each pod and ControllerRevision: which template the pod runs.
REVISION_LABEL = "controller-revision-hash"
#: How many held-up pods a failure lists by name (the count says how many more there are).
LISTED_PODS = 10


def counts(name: str, current: int, desired: int) -> str:
    """How far a rollout got, as `up` reports it and a failure starts: ``calico-node: 3 of 10 pods updated and ready``."""
    return f"{name}: {current} of {desired} pods updated and ready"


@dataclass(frozen=True)
class HeldPod:
    """A pod that is not (yet) running the current template ready, with why."""

    name: str
    node: str
    reason: str


@dataclass(frozen=True)
class Rollout:
    """One look at the DaemonSet: ``current`` pods run the newest template and are ready, of ``desired``."""

    name: str
    desired: int
    current: int
    complete: bool
    held: tuple[HeldPod, ...]
    #: The current template's hash: a new one (the DaemonSet controller caught up with an update) restarts the count.
    revision: str = ""

    def counts(self) -> str:
        return counts(self.name, self.current, self.desired)


@dataclass(frozen=True)
class Glance:
    """What the DaemonSet's own status says of its rollout, read without listing its pods (one small request)."""

    name: str
    desired: int
    #: Pods on the current template and ready, at least: exact while every pod that is not ready runs the current
    #: template (as in a rollout, where old pods are ready until replaced); 0 until the controller saw the template.
    current: int
    #: The controller reports every pod updated and available: time to check the pods themselves.
    settled: bool
    #: The DaemonSet's generation: a new template (a new generation) restarts the progress count.
    revision: str

    def counts(self) -> str:
        return counts(self.name, self.current, self.desired)


def glance(daemonset: Mapping[str, Any]) -> Glance:
    """The rollout as the DaemonSet's status counts it; pods both updated and ready are at least
    ``updated + ready - desired`` (no more than ``desired`` pods are either)."""
    meta, status = daemonset.get("metadata") or {}, daemonset.get("status") or {}
    generation = int(meta.get("generation") or 0)
    observed = int(status.get("observedGeneration") or 0) >= generation
    desired, updated = int(status.get("desiredNumberScheduled") or 0), int(status.get("updatedNumberScheduled") or 0)
    ready, available = int(status.get("numberReady") or 0), int(status.get("numberAvailable") or 0)
    current = max(0, min(updated, ready, updated + ready - desired)) if observed else 0
    settled = observed and updated >= desired and available >= desired
    return Glance(str(meta.get("name") or "?"), desired, current, settled, str(generation))


def rolled_out(daemonset: Mapping[str, Any]) -> bool:
    """Whether every pod of the DaemonSet runs its current template, ready or not: false after a rollout that was
    interrupted half-way (a pod still on the old template); true while a node is merely NotReady."""
    meta, status = daemonset.get("metadata") or {}, daemonset.get("status") or {}
    observed = int(status.get("observedGeneration") or 0) >= int(meta.get("generation") or 0)
    return observed and int(status.get("updatedNumberScheduled") or 0) >= int(status.get("desiredNumberScheduled") or 0)


def newest_revision(revisions: Sequence[Mapping[str, Any]]) -> str:
    """The hash of the DaemonSet's newest ControllerRevision (its current template), '' when there is none yet."""
    if not revisions:
        return ""
    newest = max(revisions, key=lambda r: int(r.get("revision") or 0))
    return str(((newest.get("metadata") or {}).get("labels") or {}).get(REVISION_LABEL, ""))


def _ready(pod: Mapping[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _updated(pod: Mapping[str, Any], revision: str) -> bool:
    return bool(revision) and ((pod.get("metadata") or {}).get("labels") or {}).get(REVISION_LABEL) == revision


def _reason(pod: Mapping[str, Any], revision: str) -> str:
    """Why a pod is held: a container's waiting reason (ImagePullBackOff, CrashLoopBackOff), a restart count, not
    ready, not started on its node, or still on the old template."""
    if not _updated(pod, revision):
        return "runs the previous template, waiting for its turn"
    status = pod.get("status") or {}
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason"):
            message = str(waiting.get("message") or "").strip()
            return f"{waiting['reason']}: {message}" if message else str(waiting["reason"])
        if container.get("restartCount"):
            return f"not ready, container {container.get('name')} restarted {container['restartCount']} time(s)"
    if not status.get("containerStatuses"):
        return f"not started on its node ({status.get('phase') or 'Pending'})"
    return "running, not ready (readiness probe failing)"


def observe(daemonset: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], revision: str) -> Rollout:
    """The rollout as the DaemonSet's status and its pods show it (``revision``: ``newest_revision``)."""
    meta, status = daemonset.get("metadata") or {}, daemonset.get("status") or {}
    desired = int(status.get("desiredNumberScheduled") or 0)
    current = sum(1 for p in pods if _updated(p, revision) and _ready(p))
    observed = int(status.get("observedGeneration") or 0) >= int(meta.get("generation") or 0)
    complete = observed and int(status.get("updatedNumberScheduled") or 0) >= desired \
        and int(status.get("numberAvailable") or 0) >= desired and current >= desired
    held = [p for p in pods if not (_updated(p, revision) and _ready(p))]
    # The pods that block progress first: those on the new template that are not ready, then the old ones.
    held.sort(key=lambda p: (not _updated(p, revision), str((p.get("spec") or {}).get("nodeName") or "")))
    return Rollout(
        name=str(meta.get("name") or "?"), desired=desired, current=current, complete=complete, revision=revision,
        held=tuple(HeldPod(str((p.get("metadata") or {}).get("name") or "?"),
                           str((p.get("spec") or {}).get("nodeName") or "(not scheduled)"), _reason(p, revision))
                   for p in held))


@dataclass
class Progress:
    """The progress deadline: a rollout fails when ``current`` has not grown for ``deadline`` seconds."""

    deadline: float
    started: float
    best: int = -1
    last_progress: float = 0.0
    revision: str = ""

    def update(self, current: int, revision: str, now: float) -> None:
        """Record one look: more pods of the current template ready than ever before is progress; a new template (the
        controller took up the update after the first look) starts the count again."""
        if revision != self.revision:
            self.revision, self.best = revision, -1
        if current > self.best:
            self.best, self.last_progress = current, now

    def expired(self, now: float) -> bool:
        """No progress (nor a first look) for ``deadline`` seconds."""
        return now - max(self.last_progress, self.started) >= self.deadline


def stalled_message(rollout: Rollout, deadline: float, namespace: str) -> str:
    """The error of a rollout that stopped progressing: the counts, then the pods and nodes holding it, with why."""
    lines = [f"{rollout.counts()}, and none more became ready for {deadline:g}s (await_timeout_seconds is a "
             "progress deadline: the rollout failed to progress, not to finish in time). Held up by:"]
    lines += [f"  {p.name} on {p.node}: {p.reason}" for p in rollout.held[:LISTED_PODS]]
    if len(rollout.held) > LISTED_PODS:
        lines.append(f"  and {len(rollout.held) - LISTED_PODS} more")
    lines.append(f"Look with `kubectl -n {namespace} describe pod <pod>` and `kubectl -n {namespace} rollout status "
                 f"daemonset/{rollout.name}`; the next `pulumi up` waits for this rollout again.")
    return "\n".join(lines)
