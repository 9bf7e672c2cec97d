"""`status`: the report cluster.status makes of the API server's JSON, and the command's output and exit codes."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from calico_component import cli
from calico_component.cluster.kube import Kube
from calico_component.cluster.status import Reads, report
from tests.fake_kube import FakeKube, closed_port, kubeconfig_for

UID = "3f1c2a9e-calico-node"
STACK = "organization/calico-oke/prod"

#: kube-system/calico-node as the API server returns it (trimmed to what the report reads), rolled out on 3 nodes.
DAEMONSET_JSON = """
{
  "apiVersion": "apps/v1", "kind": "DaemonSet",
  "metadata": {"name": "calico-node", "namespace": "kube-system", "uid": "3f1c2a9e-calico-node", "generation": 2,
               "annotations": {"calico-oke.io/stack": "organization/calico-oke/prod"},
               "managedFields": [{"manager": "pulumi-kubernetes-8d7f1b", "operation": "Apply"}]},
  "spec": {"selector": {"matchLabels": {"k8s-app": "calico-node"}},
           "template": {"spec": {"containers": [{
             "name": "calico-node", "image": "quay.io/calico/node:v3.32.0",
             "env": [{"name": "DATASTORE_TYPE", "value": "kubernetes"},
                     {"name": "FELIX_INTERFACEPREFIX", "value": "oci"},
                     {"name": "FELIX_CHAININSERTMODE", "value": "Append"},
                     {"name": "CALICO_NETWORKING_BACKEND",
                      "valueFrom": {"configMapKeyRef": {"name": "calico-config", "key": "calico_backend"}}}]}]}}},
  "status": {"observedGeneration": 2, "desiredNumberScheduled": 3, "currentNumberScheduled": 3,
             "updatedNumberScheduled": 3, "numberReady": 3, "numberAvailable": 3}
}
"""

POD_JSON = """
{
  "metadata": {"name": "calico-node-x", "namespace": "kube-system", "labels": {"k8s-app": "calico-node"},
               "ownerReferences": [{"kind": "DaemonSet", "name": "calico-node", "uid": "3f1c2a9e-calico-node"}]},
  "spec": {"nodeName": "worker-0"},
  "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
             "containerStatuses": [{"name": "calico-node", "ready": true, "state": {"running": {}}}]}
}
"""

NODES = ["worker-0", "worker-1", "worker-2"]


def daemonset(**status: int) -> dict[str, Any]:
    ds: dict[str, Any] = json.loads(DAEMONSET_JSON)
    ds["status"].update(status)
    return ds


def pod(node: str, *, ready: bool = True, owner: str = UID, waiting: str | None = None) -> dict[str, Any]:
    p: dict[str, Any] = json.loads(POD_JSON)
    p["metadata"]["name"] = f"calico-node-{node[-1]}"
    p["metadata"]["ownerReferences"][0]["uid"] = owner
    p["spec"]["nodeName"] = node
    if not ready or waiting:
        p["status"]["conditions"] = [{"type": "Ready", "status": "False"}]
    if waiting:
        p["status"]["phase"] = "Pending"
        p["status"]["containerStatuses"][0]["state"] = {"waiting": {"reason": waiting}}
    return p


def node(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}


def reads(ds: dict[str, Any] | None = None, pods: list[dict[str, Any]] | None = None, kubernetes: str = "v1.36.3",
          nodes: list[str] = NODES) -> Reads:
    return Reads({"major": "1", "gitVersion": kubernetes}, daemonset() if ds is None else ds, [node(n) for n in nodes],
                 [pod(n) for n in nodes] if pods is None else pods)


def line(lines: tuple[str, ...], start: str) -> str:
    found = [item for item in lines if item.startswith(start)]
    assert len(found) == 1, (start, lines)
    return found[0]


def test_healthy_calico_reports_release_stack_nodes_felix_and_rollout() -> None:
    """Healthy: the release from the image tag, Oracle's verdict, the stack, 3 of 3 nodes, each Felix setting, the rollout."""
    found = report(reads())
    assert found.healthy and found.problem is None
    assert line(found.lines, "Kubernetes:") == "Kubernetes: v1.36.3"
    assert line(found.lines, "Calico:") == "Calico: 3.32.0 (image quay.io/calico/node:v3.32.0)"
    assert "tested by Oracle on Kubernetes 1.36" in line(found.lines, "Oracle's table:")
    assert f"managed by stack {STACK}" in line(found.lines, "Installed by:")
    assert line(found.lines, "Ready:") == "Ready: calico-node ready on 3 of 3 nodes"
    assert "  FELIX_INTERFACEPREFIX: oci" in found.lines and "  FELIX_CHAININSERTMODE: Append" in found.lines
    assert "  FELIX_IPTABLESBACKEND: unset (Felix's default)" in found.lines
    assert line(found.lines, "Rollout:") == "Rollout: 3 desired, 3 updated, 3 ready, 3 available: complete"
    assert found.lines[-1].startswith("status: healthy")


def test_a_node_without_a_ready_calico_node_is_named() -> None:
    """One pod not ready and one node with no pod at all: not healthy, both nodes named with why, 1 of 3 ready."""
    ds = daemonset(numberReady=1, numberAvailable=1)
    found = report(reads(ds, [pod("worker-0"), pod("worker-1", waiting="ImagePullBackOff")]))
    assert not found.healthy
    assert line(found.lines, "Ready:").startswith("Ready: calico-node ready on 1 of 3 nodes")
    assert found.problem is not None and found.problem.startswith("calico-node is not ready on 2 of 3 nodes: ")
    assert "worker-1 (pod calico-node-1: ImagePullBackOff)" in found.problem
    assert "worker-2 (no calico-node pod)" in found.problem and "worker-0" not in found.problem
    assert "rollout" not in found.problem, "every pod runs the current template: the nodes named are the whole story"
    assert line(found.lines, "Rollout:") == "Rollout: 3 desired, 3 updated, 1 ready, 1 available: not complete"


def test_a_stuck_rollout_is_reported_beside_the_nodes_it_holds_up() -> None:
    """A node not ready while 1 of 3 pods still runs the old template: both the node and the rollout are named."""
    found = report(reads(daemonset(updatedNumberScheduled=2, numberReady=2, numberAvailable=2),
                         [pod("worker-0"), pod("worker-1", waiting="CrashLoopBackOff"), pod("worker-2")]))
    assert found.problem == ("calico-node is not ready on 1 of 3 nodes: worker-1 (pod calico-node-1: CrashLoopBackOff); "
                             "calico-node's rollout is not complete (3 desired, 2 updated, 2 ready, 2 available)")


def test_a_terminating_pod_does_not_make_its_node_ready() -> None:
    """A calico-node pod being deleted (``deletionTimestamp`` set) is on its way out even while still ready: its node
    is named as without a ready calico-node, and Calico is not healthy; the same pod not being deleted is healthy."""
    assert report(reads()).healthy
    going = pod("worker-2")
    going["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    found = report(reads(pods=[pod("worker-0"), pod("worker-1"), going]))
    assert not found.healthy and found.problem is not None
    assert "worker-2" in found.problem and "worker-0" not in found.problem and "worker-1" not in found.problem
    assert "worker-2" in line(found.lines, "Ready:")


def test_more_nodes_than_listed_are_all_counted_and_the_rest_summed_up() -> None:
    """Ten nodes without a ready calico-node are all named; with twelve, the count still covers all twelve, the
    message names ten of them and says how many more there are."""
    names = [f"node-{i:02}" for i in range(12)]
    ten = report(reads(pods=[pod(n) for n in names[10:]], nodes=names))
    assert ten.problem is not None and "not ready on 10 of 12 nodes" in ten.problem and " more" not in ten.problem
    assert all(f"{n} (" in ten.problem for n in names[:10])
    twelve = report(reads(pods=[], nodes=names))
    assert twelve.problem is not None and "not ready on 12 of 12 nodes" in twelve.problem
    assert [f"{n} (" in twelve.problem for n in names] == [True] * 10 + [False] * 2
    assert twelve.problem.endswith(" and 2 more") and "ready on 0 of 12 nodes" in line(twelve.lines, "Ready:")


def test_pods_of_another_daemonset_do_not_count() -> None:
    """A ready pod left by an earlier calico-node (another owner UID) does not make its node ready."""
    found = report(reads(pods=[pod("worker-0"), pod("worker-1"), pod("worker-2", owner="an-older-daemonset")]))
    assert found.problem is not None and "worker-2 (no calico-node pod)" in found.problem


def test_a_rollout_in_progress_is_not_healthy_even_with_every_node_ready() -> None:
    """Every node ready but only 2 of 3 pods on the new template: the rollout is not complete, so not healthy."""
    found = report(reads(daemonset(updatedNumberScheduled=2)))
    assert line(found.lines, "Ready:") == "Ready: calico-node ready on 3 of 3 nodes"
    assert line(found.lines, "Rollout:").endswith(": not complete")
    assert found.problem == "calico-node's rollout is not complete (3 desired, 2 updated, 3 ready, 3 available)"


def test_a_template_the_controller_has_not_seen_is_not_a_complete_rollout() -> None:
    """A new generation not yet observed by the DaemonSet controller: the old counts do not make it complete."""
    ds = daemonset()
    ds["metadata"]["generation"] = 3
    found = report(reads(ds))
    assert found.problem is not None and "has not seen its latest template" in found.problem


def test_without_the_mark_it_says_installed_by_hand_or_another_tool() -> None:
    """No calico-oke mark: installed by hand or another tool; applied by Pulumi, the report adds that."""
    ds = daemonset()
    del ds["metadata"]["annotations"]
    by_pulumi = line(report(reads(ds)).lines, "Installed by:")
    assert "installed by hand or by another tool (no calico-oke mark)" in by_pulumi and "Pulumi applied it" in by_pulumi
    ds["metadata"]["managedFields"] = [{"manager": "kubectl-client-side-apply"}]
    assert line(report(reads(ds)).lines, "Installed by:") == (
        "Installed by: installed by hand or by another tool (no calico-oke mark)")
    assert report(reads(ds)).healthy, "who installed it does not decide health"


def test_felix_settings_show_values_references_and_unset() -> None:
    """Each Felix setting shows its value, the ConfigMap key it comes from, or unset (Felix's default)."""
    ds = daemonset()
    env = ds["spec"]["template"]["spec"]["containers"][0]["env"]
    env[:] = [{"name": "FELIX_IPTABLESBACKEND", "value": "NFT"},
              {"name": "FELIX_INTERFACEPREFIX", "valueFrom": {"configMapKeyRef": {"name": "calico-config",
                                                                                  "key": "prefix"}}}]
    found = report(reads(ds)).lines
    assert "  FELIX_IPTABLESBACKEND: NFT" in found
    assert "  FELIX_INTERFACEPREFIX: from ConfigMap calico-config key prefix" in found
    assert "  FELIX_CHAININSERTMODE: unset (Felix's default)" in found


@pytest.mark.parametrize(("kubernetes", "image", "verdict"), [
    ("v1.33.2", "quay.io/calico/node:v3.32.0", "not tested: Oracle did not test Calico 3.32.0 on Kubernetes 1.33"),
    ("v1.35.0-oke", "iad.ocir.io/t/calico/node:v3.31.5@sha256:" + "ab" * 32, "tested by Oracle on Kubernetes 1.35"),
    ("v1.36.1", "quay.io/calico/node:v3.29.9", "not tested: Calico 3.29.9 is not in Oracle's table"),
    ("v1.36.1", "quay.io/calico/node:latest", "cannot tell without the release"),
])
def test_the_release_comes_from_the_image_tag_and_is_checked_against_oracles_table(
        kubernetes: str, image: str, verdict: str) -> None:
    """The release is the image tag (mirrored, with a digest), checked for the cluster's minor; a non-version tag is not guessed."""
    ds = daemonset()
    ds["spec"]["template"]["spec"]["containers"][0]["image"] = image
    assert verdict in line(report(reads(ds, kubernetes=kubernetes)).lines, "Oracle's table:")


def test_not_installed_is_a_problem_of_its_own() -> None:
    """No calico-node DaemonSet: the problem says Calico is not installed, and nothing else is reported."""
    found = report(Reads({"gitVersion": "v1.36.3"}, None, [], []))
    assert found.problem == "Calico is not installed (no DaemonSet kube-system/calico-node)"
    assert found.lines == ("Kubernetes: v1.36.3",)


def _fake(ds: dict[str, Any] | None, pods: list[dict[str, Any]]) -> FakeKube:
    answers: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {
        ("GET", "/version"): (200, {"major": "1", "minor": "36", "gitVersion": "v1.36.3"}),
        ("GET", "/api/v1/nodes"): (200, {"kind": "NodeList", "items": [node(n) for n in NODES]}),
        ("GET", "/api/v1/namespaces/kube-system/pods"): (200, {"kind": "PodList", "items": pods}),
    }
    if ds is not None:
        answers[("GET", "/apis/apps/v1/namespaces/kube-system/daemonsets/calico-node")] = (200, ds)
    return FakeKube(answers=answers)


def _status(server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    config = tmp_path / "kubeconfig"
    config.write_text(kubeconfig_for(server))
    code = cli.main(["status", "--kubeconfig", str(config)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_status_command_healthy_exits_0_with_only_reads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`status` on a healthy cluster: exit 0, the report on stdout, nothing on stderr, and only 4 GET requests made."""
    with _fake(daemonset(), [pod(n) for n in NODES]) as kube:
        code, out, err = _status(kube.server, tmp_path, capsys)
    assert (code, err) == (0, "")
    assert f"managed by stack {STACK}" in out and "ready on 3 of 3 nodes" in out and out.endswith(
        "status: healthy (calico-node ready on every node, its rollout complete)\n")
    assert {method for method, _, _ in kube.seen} == {"GET"} and len(kube.seen) == 4


def test_status_command_lists_only_calico_nodes_pods_and_every_node(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The pods are listed by calico-node's own selector (``k8s-app=calico-node``, URL-encoded), not every pod of
    kube-system; and every node the API server lists is counted, twelve here."""
    paths: list[str] = []
    get = Kube.get

    def spy(self: Kube, path: str) -> tuple[int, bytes]:
        paths.append(path)
        return get(self, path)

    monkeypatch.setattr(Kube, "get", spy)
    names = [f"worker-{i:02}" for i in range(12)]
    with _fake(daemonset(desiredNumberScheduled=12, updatedNumberScheduled=12, numberReady=12, numberAvailable=12),
               [pod(n) for n in names]) as kube:
        kube.answers[("GET", "/api/v1/nodes")] = (200, {"kind": "NodeList", "items": [node(n) for n in names]})
        code, out, err = _status(kube.server, tmp_path, capsys)
    assert (code, err) == (0, ""), err
    assert "ready on 12 of 12 nodes" in out
    listed = [p for p in paths if p.startswith("/api/v1/namespaces/kube-system/pods")]
    assert listed == ["/api/v1/namespaces/kube-system/pods?labelSelector=k8s-app%3Dcalico-node"], paths


def test_status_command_unhealthy_exits_1_with_the_reason_last(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """A node whose calico-node is not ready: exit 1, the report on stdout, one `error:` line naming the node."""
    ds = copy.deepcopy(daemonset(numberReady=2, numberAvailable=2))
    with _fake(ds, [pod("worker-0"), pod("worker-1", ready=False), pod("worker-2")]) as kube:
        code, out, err = _status(kube.server, tmp_path, capsys)
    assert code == 1 and "Ready: calico-node ready on 2 of 3 nodes" in out
    assert err.count("\n") == 1 and err.startswith("error: calico-node is not ready on 1 of 3 nodes: worker-1 (")


def test_status_command_without_calico_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No calico-node DaemonSet (404): exit 1 with `error: Calico is not installed (...)`."""
    with _fake(None, []) as kube:
        code, out, err = _status(kube.server, tmp_path, capsys)
    assert (code, err) == (1, "error: Calico is not installed (no DaemonSet kube-system/calico-node)\n")
    assert out == "Kubernetes: v1.36.3\n"


def test_status_command_refused_or_unreachable_is_one_error_line(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """A 403, an API server that does not answer, a missing kubeconfig file: exit 1, one `error:` line naming what to fix."""
    with FakeKube(answers={("GET", "/version"): (200, {"gitVersion": "v1.36.3"}),
                           ("GET", "/apis/apps/v1/namespaces/kube-system/daemonsets/calico-node"): (403, {})}) as kube:
        code, out, err = _status(kube.server, tmp_path, capsys)
    assert (code, out) == (1, "") and err.startswith("error: the kubeconfig's user may not read DaemonSet "
                                                     "kube-system/calico-node to show Calico's status (HTTP 403")
    url = closed_port()
    code, out, err = _status(url, tmp_path, capsys)
    assert (code, out) == (1, "") and err.startswith(f"error: {url} did not answer") and err.count("\n") == 1
    assert cli.main(["status", "--kubeconfig", str(tmp_path / "absent")]) == 1
    assert capsys.readouterr().err == f"error: cannot read --kubeconfig {tmp_path / 'absent'}: No such file or directory\n"
