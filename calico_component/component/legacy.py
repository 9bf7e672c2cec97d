"""The Python dynamic providers a stack deployed by calico-oke 0.1.0 recorded in its state, as Pulumi's dynamic
provider host loads them until the first `up` of this release moves each step to calico-oke's provider.

Their state names them by module and class (``calico_component.flannel.OkeAddonDisabledProvider``, ...); those
modules no longer exist, so ``calico_component`` answers the three recorded module names with this module (see
``LEGACY_MODULES`` there). What they still do touches nothing: a refresh keeps the recorded state (the `up` that
follows moves it), a destroy forgets them (as 0.1.0 did: flannel is never brought back), and nothing else is asked
of them once the program registers the steps with calico-oke's provider.
"""

from __future__ import annotations

from typing import Any

import pulumi.dynamic as dyn


class _Recorded(dyn.ResourceProvider):
    """A step recorded by calico-oke 0.1.0."""

    def read(self, id_: str, props: dict[str, Any]) -> dyn.ReadResult:
        return dyn.ReadResult(id_, props)

    def diff(self, _id: str, _olds: dict[str, Any], _news: dict[str, Any]) -> dyn.DiffResult:
        return dyn.DiffResult(changes=False)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        return None


class OkeAddonDisabledProvider(_Recorded):
    """The OKE Flannel add-on step (``calico_component.flannel``)."""


class DaemonSetAbsentProvider(_Recorded):
    """The kube-flannel-ds step (``calico_component.flannel``)."""


class RolloutProvider(_Recorded):
    """calico-node's rollout wait (``calico_component.rollout_wait``)."""


class PolicyCheckProvider(_Recorded):
    """The policy check (``calico_component.policy_check``)."""
