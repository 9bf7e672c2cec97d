"""Who may manage the Calico objects already on a cluster: this stack, not another stack, a hand install only when
adopted."""

from __future__ import annotations

import pytest

from calico_component.cluster.ownership import OWNER_ANNOTATION, LiveObject, ownership_problem

ME = "organization/calico-oke/prod"


def _objects(owner: str | None, pulumi_managed: bool, count: int = 3) -> list[LiveObject]:
    found = [LiveObject("ServiceAccount", "kube-system", f"sa-{i}", owner, pulumi_managed) for i in range(count - 1)]
    return [*found, LiveObject("DaemonSet", "kube-system", "calico-node", owner, pulumi_managed)]


def test_nothing_there_or_all_ours_is_fine() -> None:
    """A fresh cluster, or objects carrying this stack's mark, raise nothing."""
    assert ownership_problem([], ME, adopt_existing=False) is None
    assert ownership_problem(_objects(ME, pulumi_managed=True), ME, adopt_existing=False) is None


def test_objects_pulumi_applied_before_the_mark_are_this_stacks() -> None:
    """Unmarked objects that a pulumi-kubernetes field manager applied come from this stack's older release: no new
    input is needed to keep upgrading."""
    assert ownership_problem(_objects(None, pulumi_managed=True), ME, adopt_existing=False) is None


@pytest.mark.parametrize("adopt", [False, True])
def test_another_stacks_calico_is_refused_even_with_adopt_existing(adopt: bool) -> None:
    """Objects marked by another stack are refused; the message names calico-node, the count, the owner, says adopt is
    only for hand installs and that two stacks must never manage one cluster's Calico."""
    message = ownership_problem(_objects("organization/calico-oke/first", pulumi_managed=True, count=34), ME, adopt)
    assert message is not None
    assert "DaemonSet kube-system/calico-node and 33 other Calico objects exist" in message
    assert f"managed by stack organization/calico-oke/first ({OWNER_ANNOTATION})" in message
    assert "adoptExisting is only for a Calico installed by hand" in message
    assert "Two stacks must never manage one cluster's Calico" in message and ME in message


def test_a_hand_install_needs_adopt_existing() -> None:
    """Objects neither marked nor applied by Pulumi (kubectl apply) are refused with the adoptExisting hint, and taken
    over when it is set."""
    hand = _objects(None, pulumi_managed=False, count=2)
    message = ownership_problem(hand, ME, adopt_existing=False)
    assert message is not None and "DaemonSet kube-system/calico-node and 1 other Calico object exist" in message
    assert "set adoptExisting (adopt_existing=True) to take it over" in message
    assert ownership_problem(hand, ME, adopt_existing=True) is None


def test_a_stack_moved_to_another_organization_keeps_its_calico() -> None:
    """Objects marked by this project and stack under another organization (the file backend's ``organization``, now a
    Pulumi Cloud org) are this stack's; another stack name in the same organization, or the same stack name of another
    project, is still refused."""
    moved = _objects("organization/calico-oke/prod", pulumi_managed=True)
    assert ownership_problem(moved, "acme-platform/calico-oke/prod", adopt_existing=False) is None
    other = _objects("organization/calico-oke/staging", pulumi_managed=True)
    message = ownership_problem(other, "organization/calico-oke/prod", adopt_existing=True)
    assert message is not None and "managed by stack organization/calico-oke/staging" in message
    project = _objects("organization/other-project/prod", pulumi_managed=True)
    message = ownership_problem(project, "organization/calico-oke/prod", adopt_existing=True)
    assert message is not None and "managed by stack organization/other-project/prod" in message
