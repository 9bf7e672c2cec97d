"""``OkeAddonDisabled``: the OKE Flannel add-on disabled through the OCI API (``cluster.oke_addon``), refused on a
cluster that already has worker nodes unless allowed; refresh reads its state; delete leaves it disabled."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..cluster.oke_addon import GONE_STATES, disable_addon, refreshed_state
from .handler import Diff, Failure, Operation, Props, Step, changed
from .types import OKE_ADDON_DISABLED, UNKNOWN, snake

#: Inputs that name another add-on or cluster: the old one is left as it is and the new one disabled.
REPLACING = ("clusterId", "addonName")
#: Inputs whose change makes the next `up` ask OCI again.
COMPARED = ("clusterId", "addonName", "removeResources", "endpoint", "region", "profile", "auth")


def existing_nodes_refusal(cluster_id: Any, nodes: int) -> str:
    return (f"cluster {cluster_id} already has {nodes} worker node(s). Replacing flannel with Calico only affects "
            "nodes created afterwards, so Oracle recommends not doing it on a cluster with worker nodes. Create node "
            "pools after Calico (depends_on=[calico]), or set allow_existing_nodes=True (allowExistingNodes) and "
            "recycle the existing nodes yourself.")


def _oci_props(props: Mapping[str, Any]) -> dict[str, Any]:
    """The properties as ``cluster.oke_addon`` reads them (snake_case)."""
    return {snake(k): v for k, v in props.items()}


class OkeAddonDisabledStep(Step):
    type = OKE_ADDON_DISABLED
    compared = COMPARED

    def check(self, olds: Mapping[str, Any] | None, news: Props, op: Operation) -> list[Failure]:
        nodes = news.get("existingNodeCount")
        if olds or nodes is None or nodes is UNKNOWN or news.get("allowExistingNodes") is True:
            return []
        if nodes > 0:
            return [Failure("existingNodeCount", existing_nodes_refusal(news.get("clusterId"), nodes))]
        return []

    def diff(self, olds: Props, news: Props) -> Diff:
        keys = changed(olds, news, COMPARED)
        drifted = olds.get("addonState") not in GONE_STATES
        return Diff(changes=bool(keys) or drifted, diffs=keys + (("addonState",) if drifted else ()),
                    replaces=tuple(k for k in REPLACING if k in keys))

    def _disable(self, news: Props, op: Operation) -> Props:
        outs = disable_addon(_oci_props(news), pause=op.pause)
        return {**news, "addonState": outs["addon_state"], "workRequestId": outs["work_request_id"]}

    def create(self, news: Props, op: Operation) -> tuple[str, Props]:
        return f"{news['clusterId']}/{news['addonName']}", self._disable(news, op)

    def read(self, resource_id: str, state: Props, op: Operation) -> Props:
        return {**state, "addonState": refreshed_state(_oci_props(state), op.warn, pause=op.pause)}

    def update(self, olds: Props, news: Props, op: Operation) -> Props:
        return self._disable(news, op)

    def delete(self, resource_id: str, state: Props, op: Operation) -> None:
        # Deliberately nothing: re-enabling flannel on a Calico cluster breaks its pod network.
        return None
