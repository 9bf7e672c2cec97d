"""``RolloutAwaited``: a DaemonSet's rollout awaited by progress (``cluster.rollout_wait``) on create and whenever its
template (``trigger``), its deadline or its cluster change. Diff reads nothing; refresh records whether every pod runs
the current template, so a rollout interrupted half-way is awaited again by the next `up`."""

from __future__ import annotations

from ..cluster import rollout_wait
from ..cluster.kube import identity
from .handler import Diff, Operation, Props, Step, changed, moved
from .types import ROLLOUT_AWAITED

#: The inputs whose change means a new rollout to wait for (the kubeconfig is not one: its cluster is).
REWAIT = ("trigger", "namespace", "name", "deadlineSeconds")


class RolloutAwaitedStep(Step):
    type = ROLLOUT_AWAITED

    def diff(self, olds: Props, news: Props) -> Diff:
        keys = changed(olds, news, REWAIT) + moved(olds, news) + (("rolledOut",) if olds.get("rolledOut") is False
                                                                    else ())
        return Diff(changes=bool(keys), diffs=keys)

    def _wait(self, news: Props, op: Operation) -> Props:
        kubeconfig = str(news["kubeconfig"])
        done = rollout_wait.run(kubeconfig, str(news["namespace"]), str(news["name"]), float(news["deadlineSeconds"]),
                                pause=op.pause, report=op.report)
        op.report(done.counts())
        return {**news, "cluster": identity(kubeconfig), "pods": done.desired, "rolledOut": True}

    def create(self, news: Props, op: Operation) -> tuple[str, Props]:
        return f"{news['namespace']}/{news['name']}", self._wait(news, op)

    def read(self, resource_id: str, state: Props, op: Operation) -> Props:
        found = rollout_wait.rolled_out(str(state["kubeconfig"]), str(state["namespace"]), str(state["name"]))
        return state if found is None else {**state, "rolledOut": found}

    def update(self, olds: Props, news: Props, op: Operation) -> Props:
        return self._wait(news, op)
