"""Stacks already deployed keep working after calico-oke's code moves: the providers their state records still load.

Pulumi records each dynamic resource's provider in the stack's state as a pickle that names the provider's module and
class (``__provider``); refresh, update and destroy of that resource load it from there. A class moved to another
module without a name left behind breaks every existing stack's next command.
"""

from __future__ import annotations

import base64
import pickletools

import dill  # type: ignore[import-untyped]
import pulumi.dynamic as dyn
import pytest
from pulumi.dynamic.dynamic import serialize_provider

from calico_component.cluster.flannel import DaemonSetAbsentProvider, OkeAddonDisabledProvider
from calico_component.cluster.policy_check import PolicyCheckProvider
from calico_component.cluster.rollout_wait import RolloutProvider

#: The (module, class) pairs stacks deployed by released calico-oke versions hold in their state.
RECORDED = [
    ("calico_component.cluster.flannel", "OkeAddonDisabledProvider"),
    ("calico_component.cluster.flannel", "DaemonSetAbsentProvider"),
    ("calico_component.cluster.rollout_wait", "RolloutProvider"),
    ("calico_component.cluster.policy_check", "PolicyCheckProvider"),
]


def _recorded(module: str, name: str) -> str:
    """The ``__provider`` value of a state that recorded ``module.name``, as a pickle naming it."""
    return base64.b64encode(b"\x80\x02c" + f"{module}\n{name}\n".encode() + b")\x81.").decode()


def _load(recorded: str) -> object:
    """What Pulumi's dynamic provider host does with a ``__provider`` value."""
    return dill.loads(base64.b64decode(recorded))


#: Today's provider classes, each of which a recorded name must load as.
CURRENT: dict[str, type[dyn.ResourceProvider]] = {
    "OkeAddonDisabledProvider": OkeAddonDisabledProvider, "DaemonSetAbsentProvider": DaemonSetAbsentProvider,
    "RolloutProvider": RolloutProvider, "PolicyCheckProvider": PolicyCheckProvider,
}


@pytest.mark.parametrize(("module", "name"), RECORDED)
def test_providers_recorded_in_existing_state_still_load(module: str, name: str) -> None:
    """Each provider name existing stacks recorded loads as today's class of that provider."""
    assert type(_load(_recorded(module, name))) is CURRENT[name]


def _globals(raw: bytes) -> list[tuple[str, str]]:
    """The (module, name) pairs a pickle loads by reference; a class pickled by value loads none of its own."""
    found: list[tuple[str, str]] = []
    strings: list[str] = []
    for opcode, arg, _ in pickletools.genops(raw):
        if opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
            strings.append(str(arg))
        elif opcode.name == "STACK_GLOBAL":
            found.append((strings[-2], strings[-1]))
        elif opcode.name == "GLOBAL":
            module, _, name = str(arg).partition(" ")
            found.append((module, name))
    return found


@pytest.mark.parametrize("provider", [cls() for cls in CURRENT.values()], ids=list(CURRENT))
def test_state_written_now_names_a_recorded_provider_by_reference(provider: dyn.ResourceProvider) -> None:
    """A new `up` records the provider as a reference to one of the names above (so this list is the one to keep
    loading), not as a class pickled by value, which would not survive a change of Python or of the class."""
    raw = base64.b64decode(serialize_provider(provider))
    assert _globals(raw) == [(type(provider).__module__, type(provider).__name__)]
    assert (type(provider).__module__, type(provider).__name__) in RECORDED
    assert type(dill.loads(raw)) is type(provider)
