"""Stacks already deployed keep working after calico-oke's code moves: the providers their state records still load.

Pulumi records each dynamic resource's provider in the stack's state as a pickle that names the provider's module and
class (``__provider``); refresh, update and destroy of that resource load it from there. A class moved to another
module without a name left behind breaks every existing stack's next command.
"""

from __future__ import annotations

import base64
import pickle

import dill  # type: ignore[import-untyped]
import pulumi.dynamic as dyn
import pytest
from pulumi.dynamic.dynamic import serialize_provider

from calico_component.flannel import DaemonSetAbsentProvider, OkeAddonDisabledProvider
from calico_component.policy_check import PolicyCheckProvider
from calico_component.rollout_wait import RolloutProvider

#: The (module, class) pairs stacks deployed by released calico-oke versions hold in their state.
RECORDED = [
    ("calico_component.flannel", "OkeAddonDisabledProvider"),
    ("calico_component.flannel", "DaemonSetAbsentProvider"),
    ("calico_component.rollout_wait", "RolloutProvider"),
    ("calico_component.policy_check", "PolicyCheckProvider"),
]


def _recorded(module: str, name: str) -> str:
    """The ``__provider`` value of a state that recorded ``module.name``, as a pickle naming it."""
    return base64.b64encode(b"\x80\x02c" + f"{module}\n{name}\n".encode() + b")\x81.").decode()


def _load(recorded: str) -> object:
    """What Pulumi's dynamic provider host does with a ``__provider`` value."""
    return dill.loads(base64.b64decode(recorded))


@pytest.mark.parametrize(("module", "name"), RECORDED)
def test_providers_recorded_in_existing_state_still_load(module: str, name: str) -> None:
    """Each provider name existing stacks recorded loads as that provider; a name nothing defines does not."""
    provider = _load(_recorded(module, name))
    assert type(provider).__name__ == name and isinstance(provider, dyn.ResourceProvider)
    with pytest.raises((AttributeError, pickle.UnpicklingError)):
        _load(_recorded(module, name + "Gone"))


def test_state_written_now_names_only_recorded_providers() -> None:
    """What a new `up` records is among the names above, so this list is the one to keep loading."""
    for provider in (OkeAddonDisabledProvider(), DaemonSetAbsentProvider(), RolloutProvider(), PolicyCheckProvider()):
        raw = base64.b64decode(serialize_provider(provider))
        named = [(module, name) for module, name in RECORDED
                 if f"{module}".encode() in raw and name.encode() in raw]
        assert named == [(type(provider).__module__, type(provider).__name__)]
