"""The component's policy check (`verify_policy`): where it sits in the program, when it runs again, its input checks,
and what its provider does on a cluster that enforces policy and on one that ignores it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import pulumi
import pytest

from calico_component import Calico, CalicoArgs
from calico_component.cluster.kube import identity
from calico_component.component import calico as component
from calico_component.errors import ConfigurationError, OperationStoppedError, PolicyNotEnforcedError
from calico_component.manifest.fetch import FetchOptions
from calico_component.manifest.render import render
from calico_component.policy import run as verify_run
from calico_component.steps.handler import Operation
from calico_component.steps.policy import PolicyCheckStep
from calico_component.steps.types import POLICY_CHECKED
from tests.conftest import kubeconfig_text, mirror_path
from tests.fake_oke import FakeOke
from tests.test_component import CLUSTER, Recorder, _is_secret
from tests.test_verify import FakeCluster, _node

pytestmark = pytest.mark.usefixtures("ownership_checks")

CHECK = POLICY_CHECKED.token
SUMMARY = "verify: (what the provider returned)"


class CheckRecorder(Recorder):
    """Mocks whose policy check "ran": its create returns a summary, as the provider does after a passing check."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        rid, outs = super().new_resource(args)
        return rid, ({**outs, "summary": SUMMARY} if args.typ == CHECK else outs)


def _args(**kw: Any) -> CalicoArgs:
    base: dict[str, Any] = dict(calico_version="3.31.5", network_type="vcn-native", node_os="oracle-linux-8",
                                manifest_mirror=str(mirror_path()), kubeconfig=kubeconfig_text())
    base.update(kw)
    return CalicoArgs(**base)


def _run(rec: Recorder, components: dict[str, CalicoArgs]) -> tuple[dict[str, Calico], dict[str, Any]]:
    """Build the components under mocks, wait until every registration and output has resolved; return them and
    their policyCheck values."""
    pulumi.runtime.set_mocks(rec, preview=False)
    built: dict[str, Calico] = {}
    checks: dict[str, Any] = {}

    @pulumi.runtime.test
    def program() -> Any:
        built.update({name: Calico(name, args) for name, args in components.items()})
        resolved = [c.policy_check.apply(_keep(checks, name)) for name, c in built.items()]
        return pulumi.Output.all(*resolved, *[child.urn for c in built.values() for child in c._children.values()])

    program()
    return built, checks


def _keep(into: dict[str, Any], name: str) -> Callable[[Any], None]:
    def keep(value: Any) -> None:
        into[name] = value
    return keep


def _checks(rec: Recorder) -> dict[str, dict[str, Any]]:
    return {name: inputs for typ, name, inputs in rec.registered if typ == CHECK}


def _calico_node_digest(version: str, **kw: Any) -> str:
    """SHA-256 of calico-node's pod template as the manifest pipeline renders it (hashed here, not by the component)."""
    rendered = render(version, "vcn-native", "oracle-linux-8", fetch_options=FetchOptions(mirror=str(mirror_path())),
                      **kw)
    ds = next(o for o in rendered.objects if o["kind"] == "DaemonSet" and o["metadata"]["name"] == "calico-node")
    return hashlib.sha256(json.dumps(ds["spec"]["template"], sort_keys=True).encode()).hexdigest()


def test_verify_policy_adds_one_check_keyed_to_calico_nodes_template() -> None:
    """Off by default: no check resource and no policyCheck. With verify_policy, one child `<name>-policy-check` whose
    trigger is calico-node's template digest, sampling verify_policy_nodes nodes, with the kubeconfig kept secret; its
    summary is the component's policyCheck output."""
    rec = CheckRecorder()
    _built, outputs = _run(rec, {"plain": _args(), "checked": _args(verify_policy=True, verify_policy_nodes=2,
                                                                    image_registry="iad.ocir.io/t/c")})
    checks = _checks(rec)
    assert list(checks) == ["checked-policy-check"]
    inputs = checks["checked-policy-check"]
    assert inputs["trigger"] == _calico_node_digest("3.31.5", image_registry="iad.ocir.io/t/c")
    assert inputs["nodes"] == 2 and inputs["imageRegistry"] == "iad.ocir.io/t/c"
    assert _is_secret(inputs["kubeconfig"])
    assert outputs == {"plain": None, "checked": SUMMARY}


def test_the_check_waits_for_every_awaited_workload(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check depends on calico-node, its rollout (awaited by progress) and both Deployments: it only runs once
    they were awaited, and depends on nothing else."""
    seen: list[list[Any]] = []
    from calico_component.component.steps import PolicyCheck

    def capture(name: str, **kw: Any) -> Any:
        seen.append(list(kw["opts"].depends_on or []))
        return PolicyCheck(name, **kw)

    monkeypatch.setattr(component, "PolicyCheck", capture)
    built, _ = _run(CheckRecorder(), {"calico": _args(verify_policy=True)})
    children = built["calico"]._children
    assert len(seen) == 1
    waited = sorted(name for name, child in children.items() if any(child is d for d in seen[0]))
    assert waited == ["calico-daemonset-kube-system-calico-node",
                      "calico-deployment-kube-system-calico-kube-controllers",
                      "calico-deployment-kube-system-calico-typha"]
    from calico_component.component.steps import RolloutAwaited

    assert [type(d) for d in seen[0] if not any(d is c for c in children.values())] == [RolloutAwaited]
    assert len(seen[0]) == len(waited) + 1


def test_with_cluster_id_only_the_check_uses_okes_kubeconfig(oke: FakeOke) -> None:
    """No kubeconfig input: the check runs against the kubeconfig OKE serves for cluster_id, kept secret."""
    oke.kubernetes_endpoint = "10.0.0.5:6443"
    rec = CheckRecorder()
    _run(rec, {"calico": _args(kubeconfig=None, cluster_id=CLUSTER, verify_policy=True)})
    assert oke.requests[f"POST /20180222/clusters/{CLUSTER}/kubeconfig/content"] >= 1
    kubeconfig = _checks(rec)["calico-policy-check"]["kubeconfig"]
    assert _is_secret(kubeconfig) and "https://10.0.0.5:6443" in str(kubeconfig)


def test_the_check_runs_again_only_when_calico_node_changes() -> None:
    """Across components: a new release or registry changes calico-node's template, so the trigger; a Typha-only
    change does not. The provider re-runs (in place) on a trigger or settings change, and not when nothing changed
    or only the kubeconfig did, with the olds being what a passing check stored."""
    rec = CheckRecorder()
    variants: dict[str, dict[str, Any]] = {"base": {}, "typha": {"typha_replicas": 5},
                                           "newer": {"calico_version": "3.32.0"},
                                           "mirrored": {"image_registry": "iad.ocir.io/t/c"}}
    _run(rec, {name: _args(verify_policy=True, **kw) for name, kw in variants.items()})
    trigger = {name.removesuffix("-policy-check"): i["trigger"] for name, i in _checks(rec).items()}
    assert trigger["typha"] == trigger["base"]
    assert len({trigger["base"], trigger["newer"], trigger["mirrored"]}) == 3
    news = {"kubeconfig": kubeconfig_text(), "trigger": trigger["base"], "nodes": 3, "imageRegistry": None,
            "podTimeoutSeconds": 120.0}
    olds = {**news, "summary": "verify: policy enforced ...", "nodeLines": ["n1: policy enforced"]}
    step = PolicyCheckStep()
    assert step.diff(olds, dict(news)).changes is False
    assert step.diff(olds, {**news, "kubeconfig": kubeconfig_text(token="rotated-0123456789")}).changes is False
    upgrade = step.diff(olds, {**news, "trigger": trigger["newer"]})
    assert upgrade.changes is True and not upgrade.replaces
    for key, value in {"nodes": 5, "imageRegistry": "iad.ocir.io/t/c", "podTimeoutSeconds": 30.0}.items():
        assert step.diff(olds, {**news, key: value}).changes is True, key
    assert step.diff(olds, {**news, "kubeconfig": kubeconfig_text(server="https://10.0.0.9:6443")}).diffs == ("cluster",)


@pytest.mark.parametrize(("kwargs", "needle"), [
    (dict(verify_policy=True, skip_await=True), "skip_await does not wait"),
    (dict(verify_policy=True, kubeconfig=None), "never on the current kube context"),
    (dict(verify_policy=True, verify_policy_nodes=0), "verify_policy_nodes must be a whole number of nodes, 1 or "
                                                      "more, got 0"),
    (dict(verify_policy="yes"), "verify_policy must be true or false, got 'yes'"),
])
def test_verify_policy_inputs_are_refused_before_registration(kwargs: dict[str, Any], needle: str) -> None:
    """The same program with a valid check registers it; each bad combination fails naming the input, with nothing
    registered."""
    good = CheckRecorder()
    _run(good, {"calico": _args(verify_policy=True)})
    assert "calico-policy-check" in _checks(good)
    refused = CheckRecorder()
    with pytest.raises(ConfigurationError, match=needle):
        _run(refused, {"calico": _args(**kwargs)})
    assert refused.registered == []


def _fake_check(mode: str, seen: list[Any]) -> Callable[..., list[verify_run.NodeResult]]:
    """verify_run.check_policy over an in-memory cluster of two nodes that enforces or ignores policy."""
    def check_policy(kubeconfig: str, settings: Any, nodes: Any = None, stop: Any = None) -> list[verify_run.NodeResult]:
        seen.append((kubeconfig, settings))
        fast = type(settings)(namespace=settings.namespace, nodes=settings.nodes, image=settings.image,
                              pod_timeout_seconds=0.05, settle_seconds=0)
        return verify_run.run_check(FakeCluster([_node("n1"), _node("n2")], mode=mode), fast, nodes)  # type: ignore[arg-type]
    return check_policy


def test_the_provider_reports_each_node_and_fails_up_where_policy_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    """On an enforcing cluster create runs the check with the resource's kubeconfig, node count and registry, returns
    the summary and reports one line per node (what `up` shows under the resource); on a cluster that ignores policy
    it raises one error naming each node, the failed step and the likely causes."""
    props = {"kubeconfig": kubeconfig_text(), "trigger": "t", "nodes": 2, "imageRegistry": "iad.ocir.io/t/c",
             "podTimeoutSeconds": 120.0}
    seen: list[Any] = []
    shown: list[str] = []
    op = Operation(report=shown.append)
    monkeypatch.setattr(verify_run, "check_policy", _fake_check("enforce", seen))
    _, outs = PolicyCheckStep().create(dict(props), op)
    assert outs["summary"] == ("verify: policy enforced on 2 of 2 nodes checked (n1, n2): "
                               "default-deny, label allow, egress deny")
    (kubeconfig, settings), = seen
    assert kubeconfig == kubeconfig_text() and settings.nodes == 2 and settings.pod_timeout_seconds == 120.0
    assert settings.image.startswith("iad.ocir.io/t/c/e2e-test-images/agnhost:")
    assert shown[0].startswith("n1: policy enforced") and shown[1].startswith("n2: policy enforced")
    assert shown[-1] == outs["summary"] and outs["nodeLines"] == shown[:2]
    one = dict(props, nodes=1)
    monkeypatch.setattr(verify_run, "check_policy", _fake_check("enforce", seen))
    assert PolicyCheckStep().create(one, Operation())[1]["nodeLines"] == [shown[0]]
    monkeypatch.setattr(verify_run, "check_policy", _fake_check("ignore", seen))
    with pytest.raises(PolicyNotEnforcedError) as failed:
        PolicyCheckStep().update(props, dict(props), Operation())
    message = str(failed.value)
    assert message.startswith("verify: policy NOT enforced on n1, n2")
    assert "n1: FAILED at step 'default-deny'" in message and "n2: FAILED at step 'default-deny'" in message
    assert "1. the interface prefix" in message and "chain insert mode Append" in message


def test_create_records_the_cluster_and_hands_the_run_its_stop_signal(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check runs with the operation's stop signal, so a Ctrl-C during `up` stops it (and deletes its namespace),
    reported as a stop rather than a failed check; a passing create records the cluster its kubeconfig names, so
    moving the stack to another cluster runs the check there."""
    stops: list[Any] = []
    check = _fake_check("enforce", [])

    def check_policy(kubeconfig: str, settings: Any, nodes: Any = None, stop: Any = None) -> list[verify_run.NodeResult]:
        stops.append(stop)
        if stop is not None and stop.is_set():
            raise verify_run.RunStoppedError()
        return check(kubeconfig, settings, nodes, stop)

    monkeypatch.setattr(verify_run, "check_policy", check_policy)
    config = kubeconfig_text(server="https://10.0.0.8:6443")
    props = {"kubeconfig": config, "trigger": "t", "nodes": 2, "imageRegistry": None, "podTimeoutSeconds": 120.0}
    op = Operation()
    _, outs = PolicyCheckStep().create(dict(props), op)
    assert len(stops) == 1 and stops[0] is op.stop
    assert outs["cluster"] == identity(config) and outs["cluster"] != identity(kubeconfig_text())
    op.stop.set()
    with pytest.raises(OperationStoppedError, match="interrupted"):
        PolicyCheckStep().create(dict(props), op)
    assert len(stops) == 2 and stops[1] is op.stop
