"""``DaemonSetAbsent``: kube-system/kube-flannel-ds deleted from the cluster the kubeconfig names (``cluster.flannel``),
refused on a first create while nodes run it (unless allowed); refresh notices it back; moving the stack to another
cluster deletes it there; delete never brings it back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..cluster import flannel
from ..cluster.kube import identity
from ..errors import CalicoError
from .handler import Diff, Failure, Operation, Props, Step, changed, moved
from .types import DAEMONSET_ABSENT

DEFAULT_TIMEOUT_SECONDS = 300.0


def nodes_refusal(count: int) -> str:
    return (f"the cluster already has {count} node(s) running flannel. Replacing flannel with Calico only affects "
            "nodes created afterwards; create nodes after Calico, or set allow_existing_nodes=True "
            "(allowExistingNodes) and recycle the existing nodes yourself.")


class DaemonSetAbsentStep(Step):
    type = DAEMONSET_ABSENT

    def check(self, olds: Mapping[str, Any] | None, news: Props, op: Operation) -> list[Failure]:
        kubeconfig = news.get("kubeconfig")
        if olds or news.get("checkNodes") is not True or news.get("allowExistingNodes") is True \
                or not isinstance(kubeconfig, str):
            return []  # not a first create, not asked to, or a kubeconfig known only once an earlier resource exists
        try:
            count = flannel.nodes_running(kubeconfig, news["namespace"], news["name"])
        except CalicoError as exc:
            return [Failure("kubeconfig", str(exc))]
        return [Failure("allowExistingNodes", nodes_refusal(count))] if count > 0 else []

    def diff(self, olds: Props, news: Props) -> Diff:
        replaced = changed(olds, news, ("namespace", "name"))
        keys = replaced + moved(olds, news) + (("present",) if olds.get("present") else ())
        return Diff(changes=bool(keys), diffs=keys, replaces=replaced)

    def _delete(self, news: Props, op: Operation) -> Props:
        kubeconfig = str(news["kubeconfig"])
        existed = flannel.delete(kubeconfig, str(news["namespace"]), str(news["name"]),
                                 float(news.get("timeoutSeconds") or DEFAULT_TIMEOUT_SECONDS), pause=op.pause)
        return {**news, "cluster": identity(kubeconfig), "present": False, "existed": existed}

    def create(self, news: Props, op: Operation) -> tuple[str, Props]:
        return f"{news['namespace']}/{news['name']}", self._delete(news, op)

    def read(self, resource_id: str, state: Props, op: Operation) -> Props:
        return {**state, "present": flannel.present(str(state["kubeconfig"]), str(state["namespace"]),
                                                    str(state["name"]))}

    def update(self, olds: Props, news: Props, op: Operation) -> Props:
        return self._delete(news, op)
