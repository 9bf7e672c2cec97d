"""Policy objects a Calico release no longer enforces: which releases retire which kinds, and what the user is told."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from calico_component.cluster.kube import session
from calico_component.cluster.retired import (
    RETIRED_POLICY_KINDS,
    Found,
    RetiredCheck,
    RetiredPolicyError,
    check_cluster,
    image_version,
    read_cluster,
    retired_kinds,
    retired_problem,
)
from calico_component.errors import ClusterAuthError
from tests.fake_kube import FakeKube, kubeconfig_for

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


NODE_PATH = "/apis/apps/v1/namespaces/kube-system/daemonsets/calico-node"


def _node(image: str) -> tuple[int, dict[str, Any]]:
    return 200, {"spec": {"template": {"spec": {"containers": [{"name": "calico-node", "image": image}]}}}}


def _items(*names: str) -> tuple[int, dict[str, Any]]:
    return 200, {"items": [{"metadata": {"name": n}} for n in names]}


@contextlib.contextmanager
def _api(answers: dict[str, tuple[int, dict[str, Any]]]) -> Iterator[FakeKube]:
    """An API server on 127.0.0.1 answering GETs of the paths in ``answers``; any other path is a 404."""
    with FakeKube(answers={("GET", path): answer for path, answer in answers.items()}) as kube:
        yield kube


def _read(answers: dict[str, tuple[int, dict[str, Any]]], version: str) -> RetiredCheck:
    with _api(answers) as api, session(kubeconfig_for(api.server), "test") as kube:
        return read_cluster(kube, version)


def test_reading_the_cluster_lists_the_retired_kinds_and_the_running_release() -> None:
    """Objects of both kinds are found by name; no CRD (404) means none; calico-node's tag says whether they are
    enforced now."""
    result = _read({ANP.path: _items("b-deny", "a-allow"), BANP.path: _items("default"),
                    NODE_PATH: _node("quay.io/calico/node:v3.31.5")}, "3.32.0")
    assert [(f.kind.kind, f.name) for f in result.found] == [
        ("AdminNetworkPolicy", "a-allow"), ("AdminNetworkPolicy", "b-deny"), ("BaselineAdminNetworkPolicy", "default")]
    assert not result.already_unenforced
    result = _read({ANP.path: _items("a-allow"), NODE_PATH: _node("quay.io/calico/node:v3.32.0")}, "3.32.0")
    assert [f.name for f in result.found] == ["a-allow"] and result.already_unenforced
    assert _read({NODE_PATH: _node("quay.io/calico/node:v3.31.5")}, "3.32.0").found == ()


def test_a_forbidden_listing_is_an_error_not_an_empty_cluster() -> None:
    """A listing answered 200 is read; one answered 403 is a ClusterAuthError naming the resource, the status and the
    fix (never an empty result)."""
    assert [f.name for f in _read({ANP.path: _items("a-allow")}, "3.32.0").found] == ["a-allow"]
    with pytest.raises(ClusterAuthError, match=r"adminnetworkpolicies\.policy\.networking\.k8s\.io.*HTTP 403.*RBAC"):
        _read({ANP.path: (403, {})}, "3.32.0")


def test_check_refuses_a_new_release_warns_on_a_retired_one_and_skips_older_ones() -> None:
    """With AdminNetworkPolicy objects present: an upgrade from 3.31.5 to 3.32.0 is refused; with calico-node on 3.32.0
    already, the same objects only give a warning text; a target of 3.31.5 does not even read the cluster."""
    with _api({ANP.path: _items("a-allow"), NODE_PATH: _node("quay.io/calico/node:v3.31.5")}) as api, \
            pytest.raises(RetiredPolicyError, match=r"AdminNetworkPolicy a-allow.*Nothing was changed"):
        check_cluster(kubeconfig_for(api.server), "3.32.0")
    with _api({ANP.path: _items("a-allow"), NODE_PATH: _node("quay.io/calico/node:v3.32.0")}) as api:
        warning = check_cluster(kubeconfig_for(api.server), "3.32.0")
    assert warning is not None and "They have no effect" in warning
    with _api({ANP.path: _items("a-allow"), NODE_PATH: _node("quay.io/calico/node:v3.31.5")}) as api:
        assert check_cluster(kubeconfig_for(api.server), "3.31.5") is None and api.seen == []
