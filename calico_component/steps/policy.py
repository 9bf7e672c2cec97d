"""``PolicyCheck``: `verify`'s check run by the provider after calico-node was awaited, on create and whenever
calico-node's template (``trigger``), the check's settings or the cluster change; never on a no-op `up`. A Ctrl-C
stops it at its next wait and deletes its namespace."""

from __future__ import annotations

from ..cluster.kube import identity
from ..errors import OperationStoppedError, PolicyNotEnforcedError
from ..policy import report, run
from .handler import Diff, Operation, Props, Step, changed, moved
from .types import POLICY_CHECKED

#: The inputs whose change re-runs the check; the kubeconfig is not one (a rotated credential changes no policy).
RERUN = ("trigger", "nodes", "imageRegistry", "podTimeoutSeconds")


class PolicyCheckStep(Step):
    type = POLICY_CHECKED

    def diff(self, olds: Props, news: Props) -> Diff:
        keys = changed(olds, news, RERUN) + moved(olds, news)
        return Diff(changes=bool(keys), diffs=keys)

    def _check(self, news: Props, op: Operation) -> Props:
        kubeconfig = str(news["kubeconfig"])
        settings = run.new_settings(int(news["nodes"]), news.get("imageRegistry"), float(news["podTimeoutSeconds"]))
        try:
            results = run.check_policy(kubeconfig, settings, stop=op.stop)
        except run.RunStoppedError:
            raise OperationStoppedError(f"the policy check stopped because `pulumi up` was interrupted (Ctrl-C); its "
                                        f"namespace {settings.namespace} was deleted. The next `pulumi up` runs the "
                                        "check again") from None
        found = report.report(results)
        if found.failure is not None:
            raise PolicyNotEnforcedError(
                f"{found.failure}\nOnce fixed, the next `pulumi up` runs this check again (after a failed `pulumi up "
                "--replace` of it, replace it again); `python -m calico_component verify --kubeconfig FILE` runs it "
                "on its own.")
        for line in [*found.lines, found.summary]:
            op.report(line)
        return {**news, "cluster": identity(kubeconfig), "summary": found.summary, "nodeLines": list(found.lines)}

    def create(self, news: Props, op: Operation) -> tuple[str, Props]:
        return "policy-check", self._check(news, op)

    def update(self, olds: Props, news: Props, op: Operation) -> Props:
        return self._check(news, op)
