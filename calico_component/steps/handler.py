"""What calico-oke's provider asks of each step: check, diff, create, read, update, delete on typed properties, and
the operation they run in (a stop signal for Ctrl-C, progress lines attributed to the resource)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..cluster.kube import identity
from ..errors import CalicoError, OperationStoppedError
from .types import UNKNOWN, StepType

Props = dict[str, Any]


def _ignore(_: str) -> None:
    return None


@dataclass(frozen=True)
class Operation:
    """One provider call: ``stop`` is set when the engine cancels (the first Ctrl-C), ``report`` shows a line under
    the resource in `pulumi up`, ``warn`` a warning there."""

    stop: threading.Event = field(default_factory=threading.Event)
    report: Callable[[str], None] = _ignore
    warn: Callable[[str], None] = _ignore

    def pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or raise OperationStoppedError as soon as the operation is stopped."""
        if self.stop.wait(seconds):
            raise OperationStoppedError(
                "stopped because `pulumi up` was interrupted (Ctrl-C): nothing more was done; run `pulumi up` again "
                "to finish")

    def check_stopped(self) -> None:
        self.pause(0)


@dataclass(frozen=True)
class Failure:
    """An input refused by check: the property, and why (the engine shows it under the resource at preview)."""

    key: str
    reason: str


@dataclass(frozen=True)
class Diff:
    """What an update would change: ``changes`` None when it cannot be known yet (an input unknown at preview)."""

    changes: bool | None
    diffs: tuple[str, ...] = ()
    replaces: tuple[str, ...] = ()


def changed(olds: Mapping[str, Any], news: Mapping[str, Any], keys: tuple[str, ...]) -> tuple[str, ...]:
    """The ``keys`` whose new value differs from the old one (an unknown new value counts as a change)."""
    return tuple(k for k in keys if news.get(k) is UNKNOWN or olds.get(k) != news.get(k))


def cluster_of(props: Mapping[str, Any]) -> Any:
    """The cluster a state or an input names: the identity recorded with it, else the one its kubeconfig names
    (``kube.identity``); UNKNOWN while the kubeconfig is unknown (or unreadable: its step then fails on it)."""
    recorded = props.get("cluster")
    if isinstance(recorded, str) and recorded:
        return recorded
    kubeconfig = props.get("kubeconfig")
    if not isinstance(kubeconfig, str):
        return UNKNOWN
    try:
        return identity(kubeconfig)
    except CalicoError:
        return UNKNOWN


def moved(olds: Mapping[str, Any], news: Mapping[str, Any]) -> tuple[str, ...]:
    """``("cluster",)`` when the new inputs name another cluster than the state (or one not known yet): a step that
    acts on a cluster runs again there. A new token for the same cluster is no move."""
    new = cluster_of(news)
    return ("cluster",) if new is UNKNOWN or new != cluster_of(olds) else ()


class Step:
    """One resource type's behaviour. The defaults: no check failures, a diff over ``compared`` inputs, read keeps
    the recorded state, delete does nothing (the component's steps never undo what they did)."""

    type: StepType
    #: The inputs whose change means the step must run again.
    compared: tuple[str, ...] = ()

    def check(self, olds: Mapping[str, Any] | None, news: Props, op: Operation) -> list[Failure]:
        return []

    def diff(self, olds: Props, news: Props) -> Diff:
        keys = changed(olds, news, self.compared)
        return Diff(changes=bool(keys), diffs=keys)

    def create(self, news: Props, op: Operation) -> tuple[str, Props]:
        raise NotImplementedError

    def read(self, resource_id: str, state: Props, op: Operation) -> Props:
        return state

    def update(self, olds: Props, news: Props, op: Operation) -> Props:
        raise NotImplementedError

    def delete(self, resource_id: str, state: Props, op: Operation) -> None:
        return None
