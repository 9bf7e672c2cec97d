"""Policy objects a Calico release no longer enforces: which releases retire which kinds, and what the user is told."""

from __future__ import annotations

from calico_component.retired import RETIRED_POLICY_KINDS, Found, image_version, retired_kinds, retired_problem

ANP, BANP = RETIRED_POLICY_KINDS


def test_only_332_and_later_retire_the_admin_policy_kinds() -> None:
    """3.31.5 still enforces AdminNetworkPolicy and BaselineAdminNetworkPolicy; 3.32.0 and later do not."""
    assert retired_kinds("3.31.5") == ()
    assert retired_kinds("3.30.3") == ()
    assert {k.kind for k in retired_kinds("3.32.0")} == {"AdminNetworkPolicy", "BaselineAdminNetworkPolicy"}
    assert {k.kind for k in retired_kinds("3.33.1")} == {"AdminNetworkPolicy", "BaselineAdminNetworkPolicy"}
    assert ANP.path == "/apis/policy.networking.k8s.io/v1alpha1/adminnetworkpolicies"
    assert BANP.path == "/apis/policy.networking.k8s.io/v1alpha1/baselineadminnetworkpolicies"


def test_nothing_found_is_no_problem_and_found_objects_are_named_with_the_way_out() -> None:
    """No retired objects: no message. Found ones: the first five named, the rest counted, the remedy and 'nothing
    was changed' said."""
    assert retired_problem([], "3.32.0") is None
    found = [Found(ANP, f"anp-{i}") for i in range(6)] + [Found(BANP, "default")]
    message = retired_problem(found, "3.32.0")
    assert message is not None
    assert "Calico 3.32.0 no longer enforces AdminNetworkPolicy or BaselineAdminNetworkPolicy objects" in message
    assert "this cluster holds 7 of them: AdminNetworkPolicy anp-0, AdminNetworkPolicy anp-1" in message
    assert "AdminNetworkPolicy anp-4 and 2 more" in message and "anp-5" not in message
    assert "ClusterNetworkPolicy" in message and "kubectl delete adminnetworkpolicies.policy.networking.k8s.io --all" in message
    assert "kubectl delete baselineadminnetworkpolicies.policy.networking.k8s.io --all" in message
    assert message.endswith("then run up again. Nothing was changed.")


def test_one_kind_found_names_only_that_kind() -> None:
    """A single BaselineAdminNetworkPolicy: the message speaks of that kind and that one object."""
    message = retired_problem([Found(BANP, "default")], "3.32.0")
    assert message is not None
    assert "no longer enforces BaselineAdminNetworkPolicy objects, and this cluster holds 1 of them: " \
        "BaselineAdminNetworkPolicy default. Installing it would leave it in place" in message
    assert "adminnetworkpolicies.policy" not in message.replace("baselineadminnetworkpolicies", "")


def test_already_unenforced_is_a_statement_not_a_refusal() -> None:
    """When calico-node already runs a release that dropped them, the text says they have no effect, not that the
    install was refused."""
    message = retired_problem([Found(ANP, "deny-all")], "3.32.0", already_unenforced=True)
    assert message is not None and "They have no effect" in message and "Nothing was changed" not in message


def test_image_tags_give_the_running_release() -> None:
    """The live calico-node's release is read from its image tag, whatever registry serves it."""
    assert image_version("quay.io/calico/node:v3.32.0") == (3, 32, 0)
    assert image_version("iad.ocir.io/t/calico/calico/node:v3.31.5") == (3, 31, 5)
    assert image_version("localhost:5000/calico/node:v3.30.3@sha256:" + "ab" * 32) == (3, 30, 3)
    assert image_version("quay.io/calico/node:latest") is None
