"""Stacks deployed by calico-oke 0.1.0 keep working until their first `up` moves them: the dynamic providers their
state names still load, and what they still do touches nothing; the provider reads their recorded state."""

from __future__ import annotations

import base64

import dill  # type: ignore[import-untyped]
import pytest

from calico_component.steps import legacy
from calico_component.steps.daemonset import DaemonSetAbsentStep
from calico_component.steps.rollout import RolloutAwaitedStep
from calico_component.steps.types import ROLLOUT_AWAITED
from tests.conftest import kubeconfig_text

#: The (module, class) pairs stacks deployed by calico-oke 0.1.0 hold in their state (``__provider``).
RECORDED = [
    ("calico_component.flannel", "OkeAddonDisabledProvider"),
    ("calico_component.flannel", "DaemonSetAbsentProvider"),
    ("calico_component.rollout_wait", "RolloutProvider"),
    ("calico_component.policy_check", "PolicyCheckProvider"),
]


def _recorded(module: str, name: str) -> str:
    """The ``__provider`` value of a state that recorded ``module.name``, as a pickle naming it."""
    return base64.b64encode(b"\x80\x02c" + f"{module}\n{name}\n".encode() + b")\x81.").decode()


@pytest.mark.parametrize(("module", "name"), RECORDED)
def test_providers_recorded_by_0_1_0_load_and_touch_nothing(module: str, name: str) -> None:
    """What Pulumi's dynamic provider host does with each recorded ``__provider`` works: the class loads, a refresh
    keeps the recorded state as it is, a destroy forgets the resource, and neither makes any call."""
    provider = dill.loads(base64.b64decode(_recorded(module, name)))
    assert type(provider).__name__ == name and type(provider).__module__ == "calico_component.component.legacy"
    props = {"kubeconfig": "not a kubeconfig: nothing may read it", "namespace": "kube-system", "name": "calico-node"}
    assert provider.read("id", dict(props)).outs == props
    assert provider.delete("id", props) is None


def test_recorded_state_is_read_in_this_releases_shape() -> None:
    """A rollout wait as 0.1.0 recorded it (snake_case, floats, the pickled provider) becomes this release's typed
    state; with the same inputs its diff is empty (the first `up` only moves it), with a new template it waits."""
    state = {"kubeconfig": kubeconfig_text(), "namespace": "kube-system", "name": "calico-node", "trigger": "t1",
             "deadline_seconds": 600.0, "pods": 3.0, "__provider": _recorded(*RECORDED[2])}
    assert legacy.is_legacy(state)
    olds = legacy.translate(ROLLOUT_AWAITED, state)
    assert olds == {"kubeconfig": kubeconfig_text(), "namespace": "kube-system", "name": "calico-node",
                    "trigger": "t1", "deadlineSeconds": 600.0, "pods": 3}
    # `==` takes 3.0 for 3: the types are what the step's fields say (pods an integer, the deadline a number).
    assert ROLLOUT_AWAITED.field("pods").kind == "integer" and type(olds["pods"]) is int
    assert ROLLOUT_AWAITED.field("deadlineSeconds").kind == "number" and type(olds["deadlineSeconds"]) is float
    assert all(type(olds[k]) is str for k in ("kubeconfig", "namespace", "name", "trigger"))
    news = {k: v for k, v in olds.items() if k != "pods"}
    assert RolloutAwaitedStep().diff(olds, news).changes is False
    assert RolloutAwaitedStep().diff(olds, {**news, "trigger": "t2"}).diffs == ("trigger",)
    flannel = {"kubeconfig": kubeconfig_text(), "context": None, "namespace": "kube-system",
               "name": "kube-flannel-ds", "present": False, "existed": True, "__provider": _recorded(*RECORDED[1])}
    olds = legacy.translate(DaemonSetAbsentStep.type, flannel)
    assert "context" not in olds and DaemonSetAbsentStep().diff(olds, {
        "kubeconfig": kubeconfig_text(), "namespace": "kube-system", "name": "kube-flannel-ds"}).changes is False


def test_a_recorded_value_of_the_wrong_type_is_left_out_not_passed_on() -> None:
    """A 0.1.0 state whose value does not have its field's type (a hand-edited or corrupted state) does not reach the
    step as if valid: the value is left out, so the step sees it missing; a well-typed neighbour is kept. Without the
    recorded deadline, the same inputs are a change: the rollout is awaited again instead of trusted."""
    state = {"kubeconfig": kubeconfig_text(), "namespace": "kube-system", "name": "calico-node", "trigger": "t1",
             "deadline_seconds": 600.0, "pods": 3.0, "__provider": _recorded(*RECORDED[2])}
    good = legacy.translate(ROLLOUT_AWAITED, state)
    assert good["pods"] == 3 and good["deadlineSeconds"] == 600.0
    bad = legacy.translate(ROLLOUT_AWAITED, {**state, "pods": "three", "deadline_seconds": "600"})
    assert "pods" not in bad and "deadlineSeconds" not in bad
    assert bad == {k: v for k, v in good.items() if k not in ("pods", "deadlineSeconds")}
    news = {k: v for k, v in good.items() if k != "pods"}
    assert RolloutAwaitedStep().diff(good, news).changes is False
    assert RolloutAwaitedStep().diff(bad, news).diffs == ("deadlineSeconds",)
    # a deadline recorded as a whole number is still a number (a float, as the step reads it); a fraction where a
    # whole number of pods belongs is wrong, and a bool is not a number
    assert type(legacy.translate(ROLLOUT_AWAITED, {**state, "deadline_seconds": 600})["deadlineSeconds"]) is float
    assert "pods" not in legacy.translate(ROLLOUT_AWAITED, {**state, "pods": 2.5})
    assert "pods" not in legacy.translate(ROLLOUT_AWAITED, {**state, "pods": True})
