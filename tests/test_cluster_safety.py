"""The ownership check and kube-flannel-ds removal against API servers that misbehave, over real HTTP on 127.0.0.1:
bounded detection, explained 401/403 and exec-plugin failures, and never the machine's current kube context."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest

from calico_component.cluster import flannel, ownership
from calico_component.cluster.kube import THROTTLE_RETRIES, identity
from calico_component.errors import CalicoError, ClusterAuthError, ClusterUnreachableError, FlannelRemovalError
from calico_component.steps.daemonset import DaemonSetAbsentStep
from calico_component.steps.handler import Operation
from calico_component.steps.types import DAEMONSET_ABSENT, missing
from tests.fake_kube import FakeKube, closed_port, kubeconfig_for, silent_server

ME = "organization/calico-oke/prod"
NODE = "/apis/apps/v1/namespaces/kube-system/daemonsets/calico-node"
FLANNEL = "/apis/apps/v1/namespaces/kube-system/daemonsets/kube-flannel-ds"
OBJECTS: list[Any] = [
    {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "calico-node", "namespace": "kube-system"}},
    *({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": f"sa-{i}", "namespace": "kube-system"}}
      for i in range(20)),
]


FLANNEL_DS = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "kube-flannel-ds"},
              "spec": {"selector": {"matchLabels": {"app": "flannel"}},
                       "template": {"metadata": {"labels": {"app": "flannel"}}, "spec": {"containers": []}}}}


def _marked(owner: str) -> dict[str, Any]:
    return {"metadata": {"name": "calico-node", "annotations": {ownership.OWNER_ANNOTATION: owner}}}


def test_a_silent_server_gets_one_connection_and_a_clear_error() -> None:
    """Against a server that accepts connections and never answers, the check opens one connection (no retries, no
    parallel burst over 21 objects) and reports the server unreachable, naming it and the timeouts."""
    with silent_server() as (url, connections):
        with pytest.raises(ClusterUnreachableError, match=rf"{url} did not answer within 3s to connect and 10s") as err:
            ownership.check_cluster(kubeconfig_for(url), OBJECTS, ME, adopt_existing=False)
        assert connections[0] == 1
    assert isinstance(err.value, CalicoError)


def test_a_closed_port_is_reported_unreachable() -> None:
    """A port nothing listens on is ClusterUnreachableError (not a raw urllib3 error), naming the server."""
    url = closed_port()
    with pytest.raises(ClusterUnreachableError, match=rf"{url} did not answer"):
        ownership.check_cluster(kubeconfig_for(url), OBJECTS, ME, adopt_existing=False)


@pytest.mark.parametrize("status, needle", [
    (401, "rejected the kubeconfig's credentials (HTTP 401) when trying to read DaemonSet calico-node"),
    (403, "needs `get` on daemonsets.apps in namespace kube-system"),
])
def test_401_and_403_say_what_the_check_needs(status: int, needle: str) -> None:
    """A readable cluster whose calico-node carries another stack's mark is refused as such; the same read answered
    401 or 403 is a ClusterAuthError saying what is wrong and what the check needs."""
    with FakeKube(answers={("GET", NODE): (200, _marked("organization/calico-oke/other"))}) as kube:
        with pytest.raises(ownership.OwnershipError, match="managed by stack organization/calico-oke/other"):
            ownership.check_cluster(kubeconfig_for(kube.server), OBJECTS, ME, adopt_existing=False)
        kube.answers[("GET", NODE)] = (status, {"kind": "Status", "code": status})
        with pytest.raises(ClusterAuthError, match=re.escape(needle)):
            ownership.check_cluster(kubeconfig_for(kube.server), OBJECTS, ME, adopt_existing=False)


def test_a_throttling_api_server_is_waited_out_a_bounded_number_of_times() -> None:
    """429 with Retry-After (API Priority and Fairness under load) is retried: a burst of four still finds the other
    stack's mark; a server that throttles past the retries is reported as HTTP 429, after six requests, not hung."""
    with FakeKube(answers={("GET", NODE): (200, _marked("organization/calico-oke/other"))}, throttled=4) as kube:
        with pytest.raises(ownership.OwnershipError, match="managed by stack organization/calico-oke/other"):
            ownership.check_cluster(kubeconfig_for(kube.server), OBJECTS, ME, adopt_existing=False)
        kube.seen.clear()
        kube.throttled = 10_000
        with pytest.raises(CalicoError, match="HTTP 429"):
            ownership.check_cluster(kubeconfig_for(kube.server), OBJECTS, ME, adopt_existing=False)
        assert len(kube.seen) == 1 + THROTTLE_RETRIES


def _exec_user(script: str) -> dict[str, Any]:
    return {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": sys.executable,
                     "args": ["-c", script], "interactiveMode": "Never"}}


def test_a_failing_exec_plugin_is_reported_with_its_command_and_stderr() -> None:
    """A working exec plugin's token reaches the API server; a failing one is reported with its command and its stderr
    before any request is made (not as a bare HTTP 401)."""
    good = ("import json; print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1beta1', "
            "'kind': 'ExecCredential', 'status': {'token': 'exec-token-0123456789'}}))")
    bad = "import sys; sys.stderr.write('ServiceError: token service unavailable'); sys.exit(3)"
    with FakeKube() as kube:
        ownership.check_cluster(kubeconfig_for(kube.server, _exec_user(good)), OBJECTS, ME, adopt_existing=False)
        assert kube.seen and all(auth == "Bearer exec-token-0123456789" for _, _, auth in kube.seen)
        kube.seen.clear()
        with pytest.raises(ClusterAuthError, match=r"credential plugin `.*python.* -c import sys.*` failed.*"
                                                  r"process returned 3.*token service unavailable"):
            ownership.check_cluster(kubeconfig_for(kube.server, _exec_user(bad)), OBJECTS, ME, adopt_existing=False)
        assert kube.seen == []


def test_flannel_removal_never_uses_the_current_kube_context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With its kubeconfig the step deletes kube-flannel-ds there; without one the provider refuses the resource (the
    kubeconfig is a required input), and the cluster of the current kube context (which the kubernetes client's
    default loading does reach) receives no request at all."""
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config
    from kubernetes.config import kube_config

    with FakeKube(answers={("GET", FLANNEL): (200, FLANNEL_DS), ("DELETE", FLANNEL): (200, FLANNEL_DS)}) as named, \
            FakeKube(answers={("GET", FLANNEL): (200, FLANNEL_DS), ("DELETE", FLANNEL): (200, FLANNEL_DS)}) as ambient:
        current = tmp_path / "config"
        current.write_text(kubeconfig_for(ambient.server))
        monkeypatch.setenv("KUBECONFIG", str(current))
        monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(current))
        default_client = k8s_config.new_client_from_config()  # type: ignore[no-untyped-call]
        k8s_client.AppsV1Api(default_client).read_namespaced_daemon_set("kube-flannel-ds", "kube-system")
        assert [s[:2] for s in ambient.seen] == [("GET", FLANNEL)], "the current context must be the ambient cluster"
        ambient.seen.clear()
        props = {"namespace": "kube-system", "name": "kube-flannel-ds", "timeoutSeconds": 5.0, "checkNodes": True}
        _, outs = DaemonSetAbsentStep().create({**props, "kubeconfig": kubeconfig_for(named.server)}, Operation())
        assert outs["existed"] is True and ("DELETE", FLANNEL) in [s[:2] for s in named.seen]
        assert outs["cluster"] == identity(kubeconfig_for(named.server)) != identity(kubeconfig_for(ambient.server))
        assert missing(DAEMONSET_ABSENT, {**props, "kubeconfig": None}) == ["kubeconfig"]
        assert ambient.seen == []


def test_an_unreachable_cluster_is_a_flannel_error_not_a_urllib3_one() -> None:
    """A kubeconfig whose server answers lets the existing-nodes guard run; one whose server is a closed port makes
    check() report a failure on kubeconfig and create() raise FlannelRemovalError, not a raw urllib3 exception."""
    props = {"namespace": "kube-system", "name": "kube-flannel-ds", "timeoutSeconds": 5.0, "checkNodes": True}
    nodes = {"items": [{"metadata": {"name": "n1"}}]}
    step = DaemonSetAbsentStep()
    with FakeKube(answers={("GET", FLANNEL): (200, FLANNEL_DS),
                           ("GET", "/api/v1/nodes"): (200, nodes)}) as api:
        failures = step.check(None, {**props, "kubeconfig": kubeconfig_for(api.server)}, Operation())
        assert [f.key for f in failures] == ["allowExistingNodes"] and "1 node(s)" in failures[0].reason
    dead = kubeconfig_for(closed_port())
    failures = step.check(None, {**props, "kubeconfig": dead}, Operation())
    assert [f.key for f in failures] == ["kubeconfig"] and "did not answer" in failures[0].reason
    with pytest.raises(FlannelRemovalError, match=r"cannot remove kube-system/kube-flannel-ds: .* did not answer"):
        flannel.delete(dead, "kube-system", "kube-flannel-ds", 5)


def test_the_existing_nodes_refusal_is_for_a_first_create_asked_to_check_only() -> None:
    """A first create asked to check nodes is refused while nodes run flannel; the check stays quiet, without a
    request to the cluster, on a resource that already exists (any recorded state), when existing nodes are allowed,
    and when not asked to check."""
    news = {"namespace": "kube-system", "name": "kube-flannel-ds", "timeoutSeconds": 5.0, "checkNodes": True}
    step = DaemonSetAbsentStep()
    with FakeKube(answers={("GET", FLANNEL): (200, FLANNEL_DS),
                           ("GET", "/api/v1/nodes"): (200, {"items": [{"metadata": {"name": "n1"}}]})}) as api:
        news["kubeconfig"] = kubeconfig_for(api.server)
        refused = step.check(None, news, Operation())
        assert [f.key for f in refused] == ["allowExistingNodes"] and api.seen
        api.seen.clear()
        assert step.check({"present": False}, news, Operation()) == []
        assert step.check(None, {**news, "allowExistingNodes": True}, Operation()) == []
        assert step.check(None, {**news, "checkNodes": False}, Operation()) == []
        assert step.check(None, {k: v for k, v in news.items() if k != "checkNodes"}, Operation()) == []
        assert api.seen == []


def test_diff_runs_the_step_again_only_for_another_daemonset_another_cluster_or_one_back() -> None:
    """The same inputs (or a new token for the same cluster) change nothing; another API server is a move to another
    cluster (the DaemonSet is deleted there); a refresh that found it back (``present``) deletes it again; another
    namespace or name replaces the resource. A refresh reads ``present`` from the cluster and keeps the recorded
    cluster."""
    step = DaemonSetAbsentStep()
    with FakeKube(answers={("GET", FLANNEL): (200, FLANNEL_DS), ("DELETE", FLANNEL): (200, FLANNEL_DS)}) as api:
        news: dict[str, Any] = {"kubeconfig": kubeconfig_for(api.server), "namespace": "kube-system",
                                "name": "kube-flannel-ds", "timeoutSeconds": 5.0}
        _, olds = step.create(dict(news), Operation())
        assert olds["present"] is False and olds["cluster"] == identity(news["kubeconfig"])
        same = step.diff(olds, dict(news))
        assert same.changes is False and same.diffs == () and same.replaces == ()
        rotated = kubeconfig_for(api.server, {"token": "rotated-token-0123456789"})
        assert step.diff(olds, {**news, "kubeconfig": rotated}).changes is False
        moved = step.diff(olds, {**news, "kubeconfig": kubeconfig_for(closed_port())})
        assert moved.changes is True and moved.diffs == ("cluster",) and moved.replaces == ()
        renamed = step.diff(olds, {**news, "name": "kube-flannel"})
        assert renamed.changes is True and renamed.replaces == ("name",)
        assert step.diff(olds, {**news, "namespace": "flannel"}).replaces == ("namespace",)
        assert step.read("kube-system/kube-flannel-ds", olds, Operation()) == olds  # still absent
        api.answers[("GET", FLANNEL)] = (200, FLANNEL_DS)  # re-created behind the stack's back
        back = step.read("kube-system/kube-flannel-ds", olds, Operation())
        assert back == {**olds, "present": True} and back["cluster"] == olds["cluster"]
        again = step.diff(back, dict(news))
        assert again.changes is True and "present" in again.diffs and again.replaces == ()
