"""The component's policy check (`verify_policy`): where it sits in the program, when it runs again, its input checks,
and what its provider does on a cluster that enforces policy and on one that ignores it."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pulumi
import pytest

from calico_component import Calico, CalicoArgs, verify_run
from calico_component.errors import ConfigurationError, PolicyNotEnforcedError
from calico_component.fetch import FetchOptions
from calico_component.policy_check import PolicyCheckProvider
from calico_component.render import render
from tests.conftest import kubeconfig_text, mirror_path
from tests.test_component import Recorder
from tests.test_verify import FakeCluster, _node

pytestmark = pytest.mark.usefixtures("ownership_checks")

DYNAMIC = "pulumi-python:dynamic:Resource"


def _args(**kw: Any) -> CalicoArgs:
    base: dict[str, Any] = dict(calico_version="3.31.5", network_type="vcn-native", node_os="oracle-linux-8",
                                manifest_mirror=str(mirror_path()), kubeconfig=kubeconfig_text())
    base.update(kw)
    return CalicoArgs(**base)


def _calico_node_digest(version: str, **kw: Any) -> str:
    """SHA-256 of calico-node's pod template as the manifest pipeline renders it (hashed here, not by the component)."""
    rendered = render(version, "vcn-native", "oracle-linux-8", fetch_options=FetchOptions(mirror=str(mirror_path())),
                      **kw)
    ds = next(o for o in rendered.objects if o["kind"] == "DaemonSet" and o["metadata"]["name"] == "calico-node")
    return hashlib.sha256(json.dumps(ds["spec"]["template"], sort_keys=True).encode()).hexdigest()


@pulumi.runtime.test
def test_verify_policy_adds_one_check_keyed_to_calico_nodes_template() -> Any:
    """Off by default: no check resource. With verify_policy, one child `<name>-policy-check` whose trigger is
    calico-node's template digest, sampling verify_policy_nodes nodes, with the kubeconfig kept secret."""
    rec = Recorder()
    pulumi.runtime.set_mocks(rec, preview=False)
    plain = Calico("plain", _args())
    checked = Calico("checked", _args(verify_policy=True, verify_policy_nodes=2, image_registry="iad.ocir.io/t/c"))

    def check(values: list[Any]) -> None:
        plain_check, checked_check = values
        assert plain_check is None
        checks = rec.by_type(DYNAMIC)
        assert [name for _, name, _ in checks] == ["checked-policy-check"]
        inputs = checks[0][2]
        assert inputs["trigger"] == _calico_node_digest("3.31.5", image_registry="iad.ocir.io/t/c")
        assert inputs["nodes"] == 2 and inputs["image_registry"] == "iad.ocir.io/t/c"
        from tests.test_component import _is_secret

        assert _is_secret(inputs["kubeconfig"])
        assert checked_check is None  # the mock's create returns the inputs, where the summary is still unset

    return pulumi.Output.all(plain.policy_check, checked.policy_check).apply(check)


def test_the_check_runs_again_only_when_calico_node_changes() -> None:
    """A new release or registry changes calico-node's template and re-runs the check in place; a Typha-only change, an
    identical render or a rotated kubeconfig does not (a no-op `up` runs nothing)."""
    base = _calico_node_digest("3.31.5")
    assert _calico_node_digest("3.32.0") != base
    assert _calico_node_digest("3.31.5", image_registry="iad.ocir.io/t/c") != base
    assert _calico_node_digest("3.31.5", typha_replicas=5) == base
    provider = PolicyCheckProvider()
    olds = {"kubeconfig": "a", "trigger": base, "nodes": 3, "image_registry": None, "pod_timeout_seconds": 120.0}
    upgrade = provider.diff("policy-check", olds, {**olds, "trigger": _calico_node_digest("3.32.0")})
    assert upgrade.changes is True and not upgrade.replaces
    assert provider.diff("policy-check", olds, {**olds, "nodes": 5}).changes is True
    assert provider.diff("policy-check", olds, dict(olds)).changes is False
    assert provider.diff("policy-check", olds, {**olds, "kubeconfig": "rotated"}).changes is False


@pytest.mark.parametrize(("kwargs", "needle"), [
    (dict(verify_policy=True, skip_await=True), "skip_await does not wait"),
    (dict(verify_policy=True, kubeconfig=None), "never on the current kube context"),
    (dict(verify_policy=True, verify_policy_nodes=0), "verify_policy_nodes must be a whole number of nodes, 1 or "
                                                      "more, got 0"),
    (dict(verify_policy="yes"), "verify_policy must be true or false, got 'yes'"),
])
def test_verify_policy_inputs_are_refused_before_registration(kwargs: dict[str, Any], needle: str) -> None:
    """The same program with a valid check is accepted; each bad combination fails naming the input, with nothing
    registered."""
    rec = Recorder()
    pulumi.runtime.set_mocks(rec, preview=True)
    assert Calico("good", _args(verify_policy=True)).policy_check is not None
    with pytest.raises(ConfigurationError, match=needle):
        Calico("calico", _args(**kwargs))
    assert not [name for _, name, _ in rec.registered if name.startswith("calico")]


def _fake_check(mode: str) -> Any:
    """verify_run.check_policy over an in-memory cluster of two nodes that enforces or ignores policy."""
    def check_policy(kubeconfig: str, settings: Any, nodes: Any = None) -> list[verify_run.NodeResult]:
        assert "clusters" in kubeconfig
        fast = type(settings)(namespace=settings.namespace, nodes=settings.nodes, image=settings.image,
                              pod_timeout_seconds=0.05, settle_seconds=0)
        return verify_run.run_check(FakeCluster([_node("n1"), _node("n2")], mode=mode), fast, nodes)  # type: ignore[arg-type]
    return check_policy


def test_the_provider_reports_each_node_and_fails_up_where_policy_is_ignored(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """On an enforcing cluster create returns the summary and prints one line per node (what `up` shows); on a cluster
    that ignores policy it raises one error naming each node, the failed step and the likely causes."""
    props = {"kubeconfig": kubeconfig_text(), "trigger": "t", "nodes": 3, "image_registry": None,
             "pod_timeout_seconds": 120.0}
    monkeypatch.setattr(verify_run, "check_policy", _fake_check("enforce"))
    outs = PolicyCheckProvider().create(dict(props)).outs
    assert outs is not None and outs["summary"] == ("verify: policy enforced on 2 of 2 nodes checked (n1, n2): default-deny, "
                                       "label allow, egress deny")
    shown = capsys.readouterr().out.splitlines()
    assert shown[0].startswith("n1: policy enforced") and shown[1].startswith("n2: policy enforced")
    assert shown[-1] == outs["summary"] and outs["node_lines"] == shown[:2]
    monkeypatch.setattr(verify_run, "check_policy", _fake_check("ignore"))
    with pytest.raises(PolicyNotEnforcedError) as failed:
        PolicyCheckProvider().update("policy-check", props, dict(props))
    message = str(failed.value)
    assert message.startswith("verify: policy NOT enforced on n1, n2")
    assert "n1: FAILED at step 'default-deny'" in message and "n2: FAILED at step 'default-deny'" in message
    assert "1. the interface prefix" in message and "chain insert mode Append" in message
