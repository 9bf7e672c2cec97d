"""calico-node's rollout awaited by progress: what counts as done and as progress, which pods hold it up and why, the
deadline measured from the last progress (not from the start), and where the component puts the wait."""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pulumi
import pytest

from calico_component import Calico, CalicoArgs, RolloutStalledError
from calico_component.cluster import rollout as ro
from calico_component.cluster import rollout_wait
from calico_component.cluster.kube import identity
from calico_component.component.objects import SKIP_AWAIT_ANNOTATION
from calico_component.errors import ClusterAccessError, ClusterAuthError, ClusterUnreachableError
from calico_component.steps.handler import Operation
from calico_component.steps.rollout import RolloutAwaitedStep
from tests.conftest import kubeconfig_text, mirror_path
from tests.fake_kube import FakeKube, closed_port, kubeconfig_for
from tests.test_component import Recorder, users_provider

pytestmark = pytest.mark.usefixtures("ownership_checks")

NEW, OLD = "new-hash", "old-hash"


def _ds(desired: int, updated: int, available: int, generation: int = 2, observed: int = 2) -> dict[str, Any]:
    return {"metadata": {"name": "calico-node", "generation": generation, "uid": "ds-uid"},
            "status": {"desiredNumberScheduled": desired, "updatedNumberScheduled": updated,
                       "numberAvailable": available, "observedGeneration": observed}}


def _pod(node: str, revision: str = NEW, ready: bool = True, waiting: str = "", phase: str = "Running",
         started: bool = True) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if started:
        state = {"waiting": {"reason": waiting, "message": "back-off pulling image"}} if waiting else {"running": {}}
        status["containerStatuses"] = [{"name": "calico-node", "state": state, "restartCount": 0}]
    return {"metadata": {"name": f"calico-node-{node}", "labels": {ro.REVISION_LABEL: revision}},
            "spec": {"nodeName": node}, "status": status}


def test_done_means_every_pod_on_the_current_template_and_ready() -> None:
    """3 of 3 on the new template and ready, the controller caught up: complete. Each missing piece keeps it open: a
    pod still on the old template, a new pod not ready, a controller that has not seen the update yet."""
    pods = [_pod("a"), _pod("b"), _pod("c")]
    done = ro.observe(_ds(3, 3, 3), pods, NEW)
    assert done.complete and done.current == 3 and done.held == ()
    assert done.counts() == "calico-node: 3 of 3 pods updated and ready"
    old = ro.observe(_ds(3, 2, 3), [_pod("a"), _pod("b"), _pod("c", OLD)], NEW)
    assert not old.complete and old.current == 2
    assert old.held == (ro.HeldPod("calico-node-c", "c", "runs the previous template, waiting for its turn"),)
    unready = ro.observe(_ds(3, 3, 2), [_pod("a"), _pod("b", ready=False, waiting="ImagePullBackOff"), _pod("c")], NEW)
    assert not unready.complete and unready.held == (
        ro.HeldPod("calico-node-b", "b", "ImagePullBackOff: back-off pulling image"),)
    assert not ro.observe(_ds(3, 3, 3, generation=3, observed=2), pods, NEW).complete
    # The controller's counts and the pods must agree: either one alone short keeps the rollout open.
    assert not ro.observe(_ds(3, 3, 3), [_pod("a"), _pod("b"), _pod("c", OLD)], NEW).complete
    assert not ro.observe(_ds(3, 2, 3), pods, NEW).complete
    assert not ro.observe(_ds(3, 3, 2), pods, NEW).complete


def test_held_pods_name_why_new_template_first() -> None:
    """The pods that block progress (new template, not ready) come before those merely waiting their turn; a pod
    that never started on its node, and one whose readiness probe fails, say so."""
    pods = [_pod("b", OLD), _pod("m", ready=False, started=False, phase="Pending"), _pod("a", ready=False)]
    held = ro.observe(_ds(3, 2, 1), pods, NEW).held
    assert [h.node for h in held] == ["a", "m", "b"]
    assert held[0].reason == "running, not ready (readiness probe failing)"
    assert held[1].reason == "not started on its node (Pending)"
    restarted = _pod("r", ready=False)
    restarted["status"]["containerStatuses"][0]["restartCount"] = 3
    assert ro.observe(_ds(1, 1, 0), [restarted], NEW).held[0].reason == \
        "not ready, container calico-node restarted 3 time(s)"


def test_a_failure_lists_ten_held_pods_and_counts_the_rest() -> None:
    """Twelve pods held: the message names ten with their nodes, says how many more, and how to look."""
    pods = [_pod(f"n{i:02}", ready=False, waiting="ImagePullBackOff") for i in range(12)]
    message = ro.stalled_message(ro.observe(_ds(12, 12, 0), pods, NEW), 30, "kube-system")
    assert message.startswith("calico-node: 0 of 12 pods updated and ready, and none more became ready for 30s")
    assert [f"calico-node-n{i:02} on n{i:02}" in message for i in range(12)] == [True] * 10 + [False] * 2
    assert "\n  and 2 more\n" in message and "rollout status daemonset/calico-node" in message


def test_the_newest_controller_revision_is_the_current_template() -> None:
    """Compared as numbers: revision 10 is newer than 9."""
    revisions = [{"revision": 9, "metadata": {"labels": {ro.REVISION_LABEL: OLD}}},
                 {"revision": 10, "metadata": {"labels": {ro.REVISION_LABEL: NEW}}},
                 {"revision": 2, "metadata": {"labels": {ro.REVISION_LABEL: "middle"}}}]
    assert ro.newest_revision(revisions) == NEW and ro.newest_revision([]) == ""


class Scripted:
    """A cluster whose rollout is scripted, one state per poll, on a fake clock the waits advance: each glance moves
    to the next state and sees its counts; a look (the pods listed) sees the same state in full."""

    def __init__(self, looks: list[ro.Rollout | Exception], settled_early: int = 0) -> None:
        self.looks: Iterator[ro.Rollout | Exception] = iter(looks)
        self.state: ro.Rollout | Exception = ClusterUnreachableError("no glance yet")
        self.now = 0.0
        self.pod_lists = 0
        #: The status says "settled" this many polls before the pods show it (a status that runs ahead of them).
        self.settled_early = settled_early
        self.remaining = len(looks)
        #: The DaemonSet answers, listing its pods does not (a loaded API server times the big request out).
        self.lists_fail = False

    def glance(self, namespace: str, name: str) -> ro.Glance:
        self.state, self.remaining = next(self.looks), self.remaining - 1
        seen = self.state
        if isinstance(seen, Exception):
            raise seen
        settled = seen.complete or self.remaining < self.settled_early
        return ro.Glance(seen.name, seen.desired, seen.current, settled, seen.revision)

    def look(self, namespace: str, name: str) -> ro.Rollout:
        self.pod_lists += 1
        if self.lists_fail:
            raise ClusterUnreachableError("the pod listing timed out")
        if isinstance(self.state, Exception):
            raise self.state
        return self.state

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def clock(self) -> float:
        return self.now


def _at(current: int, desired: int = 10, revision: str = NEW, held: tuple[ro.HeldPod, ...] = ()) -> ro.Rollout:
    """A look; complete only on the new template (the old one fully ready is the controller not caught up yet)."""
    return ro.Rollout("calico-node", desired, current, current == desired and revision == NEW, held, revision)


def _wait(cluster: Scripted, deadline: float, reports: list[tuple[float, str]] | None = None) -> ro.Rollout:
    def report(line: str) -> None:
        if reports is not None:
            reports.append((cluster.now, line))

    return rollout_wait.wait(cluster, "kube-system", "calico-node", deadline,  # type: ignore[arg-type]
                             pause=cluster.sleep, clock=cluster.clock, report=report)


@pytest.fixture(autouse=True)
def two_second_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """The scripted rollouts below are written as one state every 2 s."""
    monkeypatch.setattr(rollout_wait, "POLL_SECONDS", 2.0)


def test_a_healthy_rollout_longer_than_the_deadline_succeeds() -> None:
    """Ten nodes, one more ready every 18 s (polled every 2 s): 182 s in all against a 20 s deadline, and it
    succeeds, telling `up` how far it got every 30 s. The first look shows the old template all ready (the
    controller had not taken the update up): the new template's 0 of 10 then starts the count afresh."""
    looks: list[ro.Rollout | Exception] = [_at(10, revision=OLD)]
    for current in range(0, 11):
        looks += [_at(current)] * (9 if current < 10 else 1)
    cluster = Scripted(looks)
    reports: list[tuple[float, str]] = []
    done = _wait(cluster, deadline=20, reports=reports)
    assert done.complete and next(cluster.looks, None) is None  # every look taken: it returned at the last one
    assert cluster.pod_lists == 1  # 92 polls read the DaemonSet's status; its pods were listed once, to confirm
    # look i is at 2*i s and shows (i - 1) // 9 ready pods on the new template
    assert reports == [(t, f"calico-node: {n} of 10 pods updated and ready")
                       for t, n in ((30, 1), (60, 3), (90, 4), (120, 6), (150, 8), (180, 9))]


def test_a_stalled_rollout_fails_a_deadline_after_its_last_progress_naming_the_pods() -> None:
    """Progress to 3 of 10 by 60 s, then nothing: the wait fails 20 s after the last progress (not 20 s after the
    start), with the counts and the held pods, nodes and reasons. An API server that stops answering is no progress."""
    stuck = (ro.HeldPod("calico-node-x", "node-7", "ImagePullBackOff: back-off"),)
    looks: list[ro.Rollout | Exception] = []
    for current in range(0, 3):
        looks += [_at(current, held=stuck)] * 10
    # 3 of 10 at 60 s, then the API server fails three looks (62-66 s): no progress, and no reset of the deadline
    looks += [_at(3, held=stuck)] + [ClusterUnreachableError("connection refused")] * 3 + [_at(3, held=stuck)] * 100
    cluster = Scripted(looks)
    with pytest.raises(RolloutStalledError) as failed:
        _wait(cluster, deadline=20)
    assert cluster.now == 80, cluster.now  # last progress at 60 s
    message = str(failed.value)
    assert message.startswith("calico-node: 3 of 10 pods updated and ready, and none more became ready for 20s")
    assert "calico-node-x on node-7: ImagePullBackOff: back-off" in message


def test_success_waits_for_the_pods_when_the_status_runs_ahead_of_them() -> None:
    """The status says every pod is updated and available three polls before the pods show the last one ready on the
    current template: the wait lists the pods at each of those polls and returns only when they agree."""
    looks: list[ro.Rollout | Exception] = [*[_at(n) for n in range(0, 10)], _at(9), _at(9), _at(10)]
    cluster = Scripted(looks, settled_early=3)
    done = _wait(cluster, deadline=20)
    assert done.complete and done.current == 10 and next(cluster.looks, None) is None
    assert cluster.pod_lists == 3


def test_a_glance_counts_pods_updated_and_ready_from_the_status_alone() -> None:
    """Without listing pods: updated and ready pods are at least updated + ready - desired; nothing counts before the
    controller saw the template; settled means every pod updated and available."""
    mid = ro.glance({**_ds(10, 4, 9), "status": {**_ds(10, 4, 9)["status"], "numberReady": 9}})
    assert (mid.current, mid.settled, mid.desired) == (3, False, 10)
    unseen = ro.glance({**_ds(10, 10, 10, generation=3, observed=2),
                        "status": {**_ds(10, 10, 10, generation=3, observed=2)["status"], "numberReady": 10}})
    assert (unseen.current, unseen.settled, unseen.revision) == (0, False, "3")
    done = ro.glance({**_ds(10, 10, 10), "status": {**_ds(10, 10, 10)["status"], "numberReady": 10}})
    assert (done.current, done.settled, done.revision) == (10, True, "2")
    # every pod updated, one not yet available: not settled, and the not-ready one is not counted
    last = ro.glance({**_ds(10, 10, 9), "status": {**_ds(10, 10, 9)["status"], "numberReady": 9}})
    assert (last.current, last.settled) == (9, False)
    # early in a rollout with 3 nodes down at once: 2 updated, 7 ready, so maybe none updated and ready (not -1)
    early = ro.glance({**_ds(10, 2, 7), "status": {**_ds(10, 2, 7)["status"], "numberReady": 7}})
    assert (early.current, early.settled) == (0, False)
    # a node just left (desired 9, the other counts not yet recomputed): never more counted than pods exist
    shrunk = ro.glance({**_ds(9, 10, 10), "status": {**_ds(9, 10, 10)["status"], "numberReady": 10}})
    assert shrunk.current == 10


def test_a_stall_whose_pods_cannot_be_listed_still_gives_the_counts() -> None:
    """Stuck at 3 of 10: with the pods listed, the failure names the held pod; with the listing unanswered at that
    moment, it still gives the last counts the status showed, and says the pods could not be listed."""
    stuck = (ro.HeldPod("calico-node-x", "node-7", "ImagePullBackOff: back-off"),)
    for lists_fail in (False, True):
        cluster = Scripted([_at(3, held=stuck)] * 100)
        cluster.lists_fail = lists_fail
        with pytest.raises(RolloutStalledError) as failed:
            _wait(cluster, deadline=20)
        message = str(failed.value)
        assert message.startswith("calico-node: 3 of 10 pods updated and ready, and none more became ready for 20s")
        assert ("calico-node-x on node-7" in message) is not lists_fail
        assert ("its pods could not be listed" in message) is lists_fail


def test_an_api_server_that_never_answers_fails_at_the_deadline_saying_so() -> None:
    """Every look fails: after the deadline the wait gives up naming the DaemonSet and the API server, and it
    reported no counts (it never saw any)."""
    cluster = Scripted([ClusterUnreachableError("connection refused")] * 100)
    reports: list[tuple[float, str]] = []
    with pytest.raises(RolloutStalledError, match=r"^kube-system/calico-node: the API server did not answer for 20s"):
        _wait(cluster, deadline=20, reports=reports)
    assert 20 <= cluster.now <= 22 and reports == []


class _Api:
    """A Kubernetes API answering with fixed JSON, as the wait reads it (``_preload_content=False``)."""

    def __init__(self, **answers: Any) -> None:
        self.answers = answers

    def __getattr__(self, name: str) -> Any:
        body = json.dumps(self.answers[name]).encode()
        return lambda *_, **__: SimpleNamespace(data=body)


def _owned_by(uid: str, obj: dict[str, Any]) -> dict[str, Any]:
    obj["metadata"]["ownerReferences"] = [{"uid": uid}]
    return obj


def test_a_look_counts_only_the_daemonsets_own_pods_and_revisions() -> None:
    """Pods and ControllerRevisions carrying calico-node's labels but owned by something else (a second DaemonSet
    with the same selector, leftovers) are not counted: their newer revision is not the current template and their
    unready pod holds nothing up."""
    ds = {**_ds(2, 2, 2), "spec": {"selector": {"matchLabels": {"k8s-app": "calico-node"}}}}
    revisions = [_owned_by("ds-uid", {"revision": 9, "metadata": {"labels": {ro.REVISION_LABEL: OLD}}}),
                 _owned_by("ds-uid", {"revision": 10, "metadata": {"labels": {ro.REVISION_LABEL: NEW}}}),
                 _owned_by("other", {"revision": 11, "metadata": {"labels": {ro.REVISION_LABEL: "foreign"}}})]
    pods = [_owned_by("ds-uid", _pod("a")), _owned_by("ds-uid", _pod("b")),
            _owned_by("other", _pod("x", "foreign", ready=False))]
    kube = SimpleNamespace(apps=_Api(read_namespaced_daemon_set=ds, list_namespaced_controller_revision={"items": revisions}),
                           core=_Api(list_namespaced_pod={"items": pods}), call=lambda _what, fn: fn())
    cluster = rollout_wait.Cluster(kube)  # type: ignore[arg-type]
    seen = cluster.look("kube-system", "calico-node")
    assert seen.revision == NEW and seen.current == 2 and seen.complete and seen.held == ()
    # the same look with that pod owned by calico-node: it is one of the DaemonSet's pods, listed as held
    pods[2] = _owned_by("ds-uid", pods[2])
    kube.core = _Api(list_namespaced_pod={"items": pods})
    held = cluster.look("kube-system", "calico-node")
    assert [(h.node, h.reason) for h in held.held] == [("x", "runs the previous template, waiting for its turn")]


def _args(**kw: Any) -> CalicoArgs:
    base: dict[str, Any] = dict(calico_version="3.31.5", network_type="vcn-native", node_os="oracle-linux-8",
                                manifest_mirror=str(mirror_path()))
    base.update(kw)
    return CalicoArgs(**base)


def _build(rec: Recorder, **kw: Any) -> None:
    pulumi.runtime.set_mocks(rec, preview=False)

    @pulumi.runtime.test
    def program() -> Any:
        args = _args(**kw)
        calico = Calico("calico", args, None if args.kubeconfig is not None else users_provider())
        return pulumi.Output.all(*[c.urn for c in calico._children.values()])

    program()


def _calico_node_annotations(rec: Recorder) -> dict[str, str]:
    ds = next(i for t, n, i in rec.registered if n == "calico-daemonset-kube-system-calico-node")
    return dict(ds["metadata"].get("annotations") or {})


@pytest.mark.parametrize(("kw", "deadline"), [
    (dict(kubeconfig=kubeconfig_text(), await_timeout_seconds=90), 90),
    (dict(kubeconfig=kubeconfig_text()), 600),
    (dict(kubeconfig=kubeconfig_text(), skip_await=True), None),
    (dict(), None),
])
def test_the_component_awaits_calico_node_by_progress_when_it_can_read_the_cluster(kw: dict[str, Any],
                                                                                    deadline: int | None) -> None:
    """With a kubeconfig the provider does not await calico-node (skipAwait) and a `calico-calico-node-rollout` waits
    by progress, await_timeout_seconds its deadline (600 s unset); with skip_await nothing waits; with only the providers of opts
    (nothing to read the cluster with) the provider's own await stays."""
    rec = Recorder()
    _build(rec, **kw)
    waits = {n: i for t, n, i in rec.registered if n.endswith("-calico-node-rollout")}
    skipped = _calico_node_annotations(rec).get(SKIP_AWAIT_ANNOTATION) == "true"
    if deadline is not None:
        assert list(waits) == ["calico-calico-node-rollout"] and skipped
        assert waits["calico-calico-node-rollout"]["deadlineSeconds"] == deadline
        assert waits["calico-calico-node-rollout"]["name"] == "calico-node"
    else:
        assert waits == {} and skipped == bool(kw.get("skip_await"))


def test_the_rollout_is_awaited_again_for_a_new_template_another_cluster_or_one_left_unfinished(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A new template or deadline, or another cluster, means a wait; the same inputs or a rotated token do not (a
    no-op `up`), and diff reads nothing. A refresh that finds a pod still on the old template (an `up` interrupted
    half-way, or a revert mid-rollout) records it, and then the same inputs mean a wait too; a cluster that cannot
    be read keeps what was recorded."""
    step = RolloutAwaitedStep()
    monkeypatch.setattr(rollout_wait, "session", _no_cluster)
    olds = {"kubeconfig": kubeconfig_text(), "namespace": "kube-system", "name": "calico-node", "trigger": "t1",
            "deadlineSeconds": 600.0, "pods": 3, "rolledOut": True}
    news = {k: v for k, v in olds.items() if k not in ("pods", "rolledOut")}
    assert step.diff(olds, news).changes is False
    assert step.diff(olds, {**news, "kubeconfig": kubeconfig_text(token="rotated-token-0123456789")}).changes is False
    for key, value in (("trigger", "t2"), ("deadlineSeconds", 60.0), ("name", "other"), ("namespace", "calico")):
        assert step.diff(olds, {**news, key: value}).changes is True, key
    other = kubeconfig_text(server="https://10.0.0.9:6443")
    assert step.diff(olds, {**news, "kubeconfig": other}).diffs == ("cluster",)
    found: list[bool | None] = [False]
    monkeypatch.setattr(rollout_wait, "rolled_out", lambda *_: found[0])
    refreshed = step.read("id", olds, Operation())
    assert refreshed["rolledOut"] is False and step.diff(refreshed, news).diffs == ("rolledOut",)
    found[0] = None
    assert step.read("id", olds, Operation()) == olds


def _no_cluster(*_: Any) -> Any:
    raise AssertionError("diff must not read the cluster")


def test_a_failing_answer_during_a_wait_is_a_poll_without_progress_a_refusal_fails_at_once() -> None:
    """An HTTP 500 (or 429, or no answer) between two looks only costs a poll: the rollout goes on and completes. A 401
    fails the wait at once, with the fix, long before the deadline."""
    cluster = Scripted([_at(2), ClusterAccessError("read DaemonSet failed: HTTP 500", 500), _at(5), _at(10)])
    assert _wait(cluster, deadline=20).complete
    cluster = Scripted([_at(2), ClusterAuthError("the API server rejected the kubeconfig's credentials (HTTP 401)", 401),
                        *[_at(2)] * 50])
    with pytest.raises(ClusterAuthError, match="HTTP 401"):
        _wait(cluster, deadline=20)
    assert cluster.now < 20


CALICO_NODE = "/apis/apps/v1/namespaces/kube-system/daemonsets/calico-node"


def test_refresh_reads_whether_every_pod_runs_the_current_template_from_the_cluster() -> None:
    """What `pulumi refresh` records, read over HTTP from the DaemonSet's status: every pod updated is rolled out,
    even with one pod not ready (a NotReady node is no unfinished rollout); a pod left on the old template, or a
    template the controller has not seen yet, is not; a cluster that does not answer gives no verdict (None), so the
    recorded state is kept."""
    with FakeKube() as kube:
        config = kubeconfig_for(kube.server)

        def refreshed(ds: dict[str, Any]) -> bool | None:
            kube.answers[("GET", CALICO_NODE)] = (200, ds)
            return rollout_wait.rolled_out(config, "kube-system", "calico-node")

        assert refreshed(_ds(3, 3, 3)) is True
        assert refreshed(_ds(3, 2, 3)) is False
        assert refreshed(_ds(3, 3, 2)) is True  # every pod on the current template, one of them NotReady
        assert refreshed(_ds(3, 3, 3, generation=3, observed=2)) is False
        assert [(method, path) for method, path, _ in kube.seen] == [("GET", CALICO_NODE)] * 4
    assert rollout_wait.rolled_out(kubeconfig_for(closed_port()), "kube-system", "calico-node") is None


def test_create_waits_on_its_kubeconfig_and_records_the_cluster_and_pod_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """Create waits for the rollout of the resource's DaemonSet on the cluster of its kubeconfig, with the operation's
    pause (a Ctrl-C stops it) and its report; the outputs say it rolled out, how many pods (a whole number, as the
    schema's integer) and which cluster, read from the kubeconfig, so another cluster later means another wait."""
    calls: list[tuple[Any, ...]] = []
    done = ro.Rollout("calico-node", 4, 4, True, (), NEW)

    def run(kubeconfig: str, namespace: str, name: str, deadline: float, *, pause: Any, report: Any) -> ro.Rollout:
        calls.append((kubeconfig, namespace, name, deadline, pause, report))
        return done

    monkeypatch.setattr(rollout_wait, "run", run)
    shown: list[str] = []
    op = Operation(report=shown.append)
    config = kubeconfig_text(server="https://10.0.0.7:6443")
    news = {"kubeconfig": config, "namespace": "kube-system", "name": "calico-node", "trigger": "t1",
            "deadlineSeconds": 90.0}
    resource_id, outs = RolloutAwaitedStep().create(dict(news), op)
    assert calls == [(config, "kube-system", "calico-node", 90.0, op.pause, op.report)]
    assert resource_id == "kube-system/calico-node"
    assert outs["rolledOut"] is True and outs["pods"] == done.desired and type(outs["pods"]) is int
    assert outs["cluster"] == identity(config) and outs["cluster"] != identity(kubeconfig_text())
    assert {k: outs[k] for k in news} == news and shown == [done.counts()]
