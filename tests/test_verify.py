"""The policy check's plan, its runner and its report, against a small in-memory cluster whose pods connect as the
NetworkPolicies in force say (or as a cluster that ignores them, or runs no containers, would)."""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest

from calico_component.errors import CalicoError, ConfigurationError
from calico_component.policy import plan, report
from calico_component.policy.run import Runner, classify, run_check


def _node(name: str, pool: str = "pool-a", os_image: str = "Oracle Linux Server 8.10", ready: bool = True,
          unschedulable: bool = False) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {plan.NODE_POOL_LABEL: pool}},
            "spec": {"unschedulable": unschedulable},
            "status": {"nodeInfo": {"osImage": os_image},
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def _selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def _peer_ok(rule: Mapping[str, Any], key: str, labels: Mapping[str, str], port: int) -> bool:
    """A NetworkPolicy rule admits (labels, port): an absent or empty peer/port list matches everything."""
    peers, ports = rule.get(key) or [], rule.get("ports") or []
    return (not peers or any(_selects(p.get("podSelector") or {}, labels) for p in peers)) and (
        not ports or any(p.get("protocol", "TCP") == "TCP" and p["port"] == port for p in ports))


def _allowed(policies: list[dict[str, Any]], kind: str, subject: Mapping[str, str], peer: Mapping[str, str],
             port: int) -> bool:
    """Kubernetes semantics: isolated when some policy of this kind selects the subject; then some rule must admit."""
    selecting = [p for p in policies if kind in p["spec"]["policyTypes"] and _selects(p["spec"]["podSelector"], subject)]
    key, rules = ("from", "ingress") if kind == "Ingress" else ("to", "egress")
    return not selecting or any(_peer_ok(rule, key, peer, port) for p in selecting for rule in p["spec"].get(rules) or [])


@dataclass
class FakeCluster:
    """Namespaces, pods and policies in memory; a client pod connects to the pod holding the target address, if that
    pod is on the same node and declares the port, as the policies in force allow. ``mode``: ``enforce``; ``ignore``
    (every policy ignored, as with Felix policing the wrong interfaces); ``no-egress`` (egress ignored); ``any-port``
    (ports in rules ignored); ``drop-all`` (nothing connects); ``no-kubelet`` (pods never run)."""

    node_list: list[dict[str, Any]]
    mode: str = "enforce"
    namespaces: dict[str, str] = field(default_factory=dict)
    pods: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    policies: list[dict[str, Any]] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    interrupt_on: str = ""
    interrupt: Any = None

    def nodes(self) -> list[dict[str, Any]]:
        return self.node_list

    def create(self, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        if self.interrupt_on and name.startswith(self.interrupt_on):
            self.interrupt_on = ""  # once, as one Ctrl-C
            self.interrupt()
        self.created.append(f"{obj['kind']}/{name}")
        assert obj["metadata"]["labels"][plan.CHECK_LABEL]
        if obj["kind"] == "Namespace":
            self.namespaces[name] = "2026-12-03T10:00:00Z"
        elif obj["kind"] == "NetworkPolicy":
            assert obj["metadata"]["namespace"] in self.namespaces
            self.policies.append(copy.deepcopy(obj))
        else:
            assert obj["metadata"]["namespace"] in self.namespaces
            self.pods[(obj["metadata"]["namespace"], name)] = self._run(copy.deepcopy(obj))

    def _run(self, pod: dict[str, Any]) -> dict[str, Any]:
        if self.mode == "no-kubelet":
            pod["status"] = {"phase": "Running", "podIP": f"10.0.1.{len(self.pods) + 2}",
                             "containerStatuses": [{"ready": True, "state": {"running": {}}}]}
            return pod
        if pod["spec"]["restartPolicy"] == "Always":
            pod["status"] = {"podIP": f"10.0.0.{len(self.pods) + 2}",
                             "containerStatuses": [{"ready": True} for _ in pod["spec"]["containers"]]}
            return pod
        ok = self._connects(pod)
        pod["status"] = {"containerStatuses": [{"state": {"terminated": (
            {"exitCode": 0} if ok else {"exitCode": 1, "message": "TIMEOUT\n"})}}]}
        return pod

    def _connects(self, client: dict[str, Any]) -> bool:
        ip, _, port_text = client["spec"]["containers"][0]["args"][1].rpartition(":")
        port = int(port_text)
        target = next(p for p in self.pods.values() if (p.get("status") or {}).get("podIP") == ip)
        assert target["spec"]["nodeName"] == client["spec"]["nodeName"], "client and target on one node"
        declared = [cp["containerPort"] for c in target["spec"]["containers"] for cp in c.get("ports", [])]
        if self.mode == "drop-all" or port not in declared:
            return False
        policies = [] if self.mode == "ignore" else copy.deepcopy(self.policies)
        if self.mode == "any-port":
            for p in policies:
                for rule in p["spec"].get("ingress") or []:
                    rule.pop("ports", None)
        src, dst = client["metadata"]["labels"], target["metadata"]["labels"]
        egress = self.mode == "no-egress" or _allowed(policies, "Egress", src, dst, port)
        return egress and _allowed(policies, "Ingress", dst, src, port)

    def pod(self, namespace: str, name: str) -> dict[str, Any]:
        return self.pods[(namespace, name)]

    def delete_pod(self, namespace: str, name: str) -> None:
        self.pods.pop((namespace, name), None)

    def check_namespaces(self) -> dict[str, str]:
        return dict(self.namespaces)

    def delete_namespace(self, name: str) -> None:
        self.namespaces.pop(name, None)
        self.pods = {k: v for k, v in self.pods.items() if k[0] != name}
        self.policies = [p for p in self.policies if p["metadata"]["namespace"] != name]


SETTINGS = plan.Settings(namespace=plan.namespace_name("abc123"), pod_timeout_seconds=0.05, settle_seconds=0)


def _run(cluster: FakeCluster, nodes: list[str] | None = None) -> list[Any]:
    return run_check(cluster, SETTINGS, nodes)  # type: ignore[arg-type]


def test_sampling_covers_every_pool_and_os_image_then_fills_up() -> None:
    """One node per (node pool, OS image) even when that exceeds the count, then more up to it; NotReady and cordoned
    nodes are never chosen."""
    nodes = [_node("a1"), _node("a2"), _node("a3"), _node("b1", pool="pool-b"), _node("c1", os_image="Oracle Linux 9"),
             _node("x", pool="pool-x", ready=False), _node("y", pool="pool-y", unschedulable=True)]
    assert plan.sample_nodes(nodes, 1) == ["a1", "b1", "c1"]
    assert plan.sample_nodes(nodes, 4) == ["a1", "b1", "c1", "a2"]
    assert plan.sample_nodes(nodes, 10) == ["a1", "b1", "c1", "a2", "a3"]
    with pytest.raises(ConfigurationError, match="nodes to check: 0; expected 1 or more"):
        plan.sample_nodes(nodes, 0)


def test_the_probe_image_is_pinned_and_follows_image_registry() -> None:
    """agnhost by digest; image_registry moves it like Calico's images, keeping the digest; a hostless prefix is
    refused as for Calico."""
    assert plan.probe_image(None).startswith("registry.k8s.io/e2e-test-images/agnhost:2.53@sha256:")
    moved = plan.probe_image("iad.ocir.io/tenancy/mirror")
    assert moved == "iad.ocir.io/tenancy/mirror/e2e-test-images/agnhost:2.53@sha256:" + plan.PROBE_IMAGE.split(":")[-1]
    with pytest.raises(ConfigurationError, match="registry host"):
        plan.probe_image("mirror/calico")


def test_every_probe_pod_is_pinned_restricted_and_stops_by_itself() -> None:
    """Each pod a run creates (listeners and every client of every step) runs on the node it checks, passes Pod
    Security `restricted` as the namespace enforces it, and is bounded in time by its kubelet even if the check that
    created it is killed; the namespace is labelled for the next run's sweep."""
    cluster = FakeCluster([_node("n1")])
    created: list[dict[str, Any]] = []
    make = cluster.create

    def record(obj: dict[str, Any]) -> None:
        created.append(copy.deepcopy(obj))
        make(obj)

    cluster.create = record  # type: ignore[method-assign]
    assert _run(cluster)[0].enforced
    ns = next(o for o in created if o["kind"] == "Namespace")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert ns["metadata"]["labels"][plan.CHECK_LABEL] == SETTINGS.namespace
    pods = [o for o in created if o["kind"] == "Pod"]
    assert len(pods) == 2 + 12  # server and bystander, one client per probe of the four steps
    for pod in pods:
        spec = pod["spec"]
        assert spec["nodeName"] == "n1" and spec["automountServiceAccountToken"] is False
        assert 0 < spec["activeDeadlineSeconds"] <= 3600
        assert spec["containers"]
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] and sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"] and sc["seccompProfile"]["type"] == "RuntimeDefault"


def test_an_enforcing_cluster_passes_every_step_and_the_report_says_so() -> None:
    """On a cluster that enforces NetworkPolicy each node passes the four steps; the summary line is the one the
    demo prints, and there is no failure message."""
    cluster = FakeCluster([_node("n1"), _node("n2", pool="pool-b")])
    results = _run(cluster)
    assert [r.node for r in results] == ["n1", "n2"] and all(r.enforced for r in results)
    assert report.summary(results) == ("verify: policy enforced on 2 of 2 nodes checked (n1, n2): default-deny, "
                                       "label allow, egress deny")
    assert report.node_line(results[0]) == "n1: policy enforced (default-deny, label allow, egress deny; 12 probes)"
    assert report.failure_message(results) is None


def test_a_cluster_that_ignores_policy_fails_at_default_deny_with_the_causes_in_order() -> None:
    """The same run on a cluster where every connection succeeds passes the positive control and fails at
    default-deny, naming the node, the probe and the causes (interface prefix first, the Append bypass among them)."""
    results = _run(FakeCluster([_node("n1")], mode="ignore"))
    assert results[0].steps[0][0].name == "no policy" and all(r.passed for r in results[0].steps[0][1])
    message = report.failure_message(results)
    assert message is not None
    assert "policy NOT enforced on n1" in message
    assert "n1: FAILED at step 'default-deny': labelled client -> server:8080 must time out, but it connected" in message
    causes = message[message.index("Likely causes"):]
    assert causes.index("interface prefix") < causes.index("chain insert mode Append") < causes.index(
        "iptables backend") < causes.index("Felix not programming")
    assert report.error_line(results) == ("policy NOT enforced on n1: n1 failed at step 'default-deny' "
                                          "(details above)")


@pytest.mark.parametrize("mode, step, probe, causes", [
    ("no-egress", "egress deny", "labelled client -> server:8080 must time out", "the interface prefix"),
    ("any-port", "label allow", "labelled client -> server:8081 must time out", "the interface prefix"),
    ("drop-all", "no policy", "labelled client -> server:8080 must connect", "pod networking on the node"),
])
def test_each_kind_of_partial_enforcement_fails_at_its_own_step(mode: str, step: str, probe: str, causes: str) -> None:
    """A cluster that enforces ingress but not egress fails at egress deny; one that ignores ports in rules at label
    allow (the labelled client reaching 8081); one where nothing connects fails the positive control, with
    reachability causes instead of enforcement ones. The enforcing cluster passes all of these steps."""
    assert _run(FakeCluster([_node("n1")]))[0].enforced
    results = _run(FakeCluster([_node("n1")], mode=mode))
    failure = results[0].first_failure()
    assert failure is not None and failure[0].name == step and failure[1].probe.describe() == probe
    message = report.failure_message(results)
    assert message is not None and message.split("Likely causes, in order:\n")[1].startswith(f"  1. {causes}")


def test_nodes_that_run_no_containers_are_reported_as_not_run_never_passed() -> None:
    """Where no kubelet runs the probes (kwok, virtual nodes) the servers look ready but no client ever finishes:
    the check says it could not run there, and does not pass."""
    enforcing = _run(FakeCluster([_node("real")]))
    assert enforcing[0].enforced
    results = _run(FakeCluster([_node("kwok-0")], mode="no-kubelet"))
    assert not results[0].enforced and "did not finish within 0.05s (phase Running)" in results[0].not_run
    assert report.summary(results).startswith("verify: could not run on kwok-0")
    assert report.error_line(results).startswith("could not run the policy check on kwok-0: pod client-0-s0")


def test_nothing_is_left_behind_after_success_failure_or_ctrl_c() -> None:
    """The namespace (and with it every pod and policy) is gone after a passing run, a failing run, and one
    interrupted by Ctrl-C (SIGINT) as a worker starts its first probe: the run stops within moments instead of waiting
    out the probes' 60 s, even when the kernel hands the signal to that worker thread rather than the main one."""
    import signal
    import threading

    for mode in ("enforce", "ignore"):
        cluster = FakeCluster([_node("n1")], mode=mode)
        _run(cluster)
        assert any(c.startswith("Pod/client-") for c in cluster.created)
        assert cluster.namespaces == {} and cluster.pods == {} and cluster.policies == []
    cluster = FakeCluster([_node("n1"), _node("n2")], mode="no-kubelet", interrupt_on="client-",
                          interrupt=lambda: signal.pthread_kill(threading.get_ident(), signal.SIGINT))
    slow = plan.Settings(SETTINGS.namespace, pod_timeout_seconds=60, settle_seconds=0)
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_check(cluster, slow)  # type: ignore[arg-type]
    assert any(c.startswith("Pod/client-") for c in cluster.created) and cluster.namespaces == {}
    assert time.monotonic() - started < 30, "the interrupted run waited for its probes"


def test_only_old_leftovers_are_swept() -> None:
    """A check namespace older than an hour (an interrupted run's) is deleted by the next run; a recent one, which
    may be another run's going on elsewhere, is left alone."""
    from calico_component.policy.run import sweep

    cluster = FakeCluster([_node("n1")])
    cluster.namespaces = {"calico-oke-check-old": "2026-12-03T08:00:00Z", "calico-oke-check-new": "2026-12-03T09:30:00Z"}
    now = datetime.fromisoformat("2026-12-03T10:00:00+00:00").timestamp()
    assert sweep(cluster, now) == ["calico-oke-check-old"]  # type: ignore[arg-type]
    assert list(cluster.namespaces) == ["calico-oke-check-new"]


@pytest.mark.parametrize("state, expected", [
    ({"terminated": {"exitCode": 0}}, ("ok", "connected")),
    ({"terminated": {"exitCode": 1, "message": "TIMEOUT\n"}}, ("timeout", "TIMEOUT")),
    ({"terminated": {"exitCode": 1, "message": "REFUSED\n"}}, ("refused", "REFUSED")),
    ({"terminated": {"exitCode": 1, "message": "OTHER: dial tcp: no route to host"}},
     ("other", "OTHER: dial tcp: no route to host")),
    ({"waiting": {"reason": "ImagePullBackOff", "message": "pull failed"}}, ("not-run", "ImagePullBackOff: pull failed")),
    ({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}}, ("not-run", "CrashLoopBackOff: back-off")),
    ({"running": {}}, None),
])
def test_a_probe_pod_is_classified_by_how_its_container_ended(state: dict[str, Any], expected: Any) -> None:
    """Exit 0 connected; agnhost's TIMEOUT and REFUSED are told apart (a refusal is not a policy drop); a pull that
    cannot succeed is not-run; a running pod has no outcome yet."""
    assert classify({"status": {"containerStatuses": [{"state": state}]}}) == expected


def test_a_policy_that_takes_a_moment_is_retried_within_the_settle_time() -> None:
    """A deny that is not in force on the first attempt passes once it is, within settle_seconds; past it, the last
    outcome stands."""
    outcomes = iter(["ok", "ok", "timeout"])

    class Slow(FakeCluster):
        def _run(self, pod: dict[str, Any]) -> dict[str, Any]:
            if pod["spec"]["restartPolicy"] == "Never":
                seen = next(outcomes)
                pod["status"] = {"containerStatuses": [{"state": {"terminated": (
                    {"exitCode": 0} if seen == "ok" else {"exitCode": 1, "message": "TIMEOUT"})}}]}
                return pod
            return super()._run(pod)

    cluster = Slow([_node("n1")])
    cluster.namespaces[SETTINGS.namespace] = ""
    probe = plan.STEPS[1].probes[1]
    assert probe.expect == "timeout"
    runner = Runner(cluster, plan.Settings(SETTINGS.namespace, settle_seconds=60), sleep=lambda _s: None)  # type: ignore[arg-type]
    result = runner.attempt("n1", 0, 1, probe, "10.0.0.2", runner.clock())
    assert (result.outcome, result.attempts, result.passed) == ("timeout", 3, True)
    hurried = Runner(cluster, plan.Settings(SETTINGS.namespace, settle_seconds=0), sleep=lambda _s: None)  # type: ignore[arg-type]
    outcomes = iter(["ok"])
    result = hurried.attempt("n1", 0, 1, probe, "10.0.0.2", hurried.clock())
    assert (result.outcome, result.attempts, result.passed) == ("ok", 1, False)


def test_named_nodes_are_checked_to_exist_before_anything_is_created() -> None:
    """--node picks exactly the nodes named (a cordoned one too); a name the cluster does not have is refused before
    the namespace is created, listing the cluster's nodes."""
    from calico_component.errors import PolicyCheckError

    cluster = FakeCluster([_node("n1"), _node("n2", unschedulable=True)])
    assert [r.node for r in _run(cluster, ["n2"])] == ["n2"]
    cluster = FakeCluster([_node("n1")])
    with pytest.raises(PolicyCheckError, match="no node named ghost in the cluster; its nodes: n1"):
        _run(cluster, ["ghost"])
    assert cluster.created == []


def test_bad_namespace_suffix_is_refused() -> None:
    """The namespace name is checked before anything is created."""
    assert plan.namespace_name("a1b2c3") == "calico-oke-check-a1b2c3"
    with pytest.raises(CalicoError, match="'Bad_Suffix'"):
        plan.namespace_name("Bad_Suffix")


def test_the_dataplane_stand_in_runs_what_the_plan_asks_and_reports_it_as_agnhost_would() -> None:
    """The dataplane node recognises the plan's client pods (not its servers) as `agnhost connect` with their target
    and timeout, and its terminated status reads back through classify() as agnhost's own would."""
    from calico_component.local.pods import agnhost_connect, terminated_status

    client = plan.client_pod(SETTINGS, "n1", 0, 2, plan.STEPS[2].probes[2], 1, "10.0.0.7")
    assert agnhost_connect(client) == ("10.0.0.7", plan.OTHER_PORT, float(plan.CONNECT_TIMEOUT_SECONDS))
    assert agnhost_connect(plan.server_pod(SETTINGS, "n1", 0)) is None
    spaced = {**client, "spec": {**client["spec"], "containers": [
        {**client["spec"]["containers"][0], "args": ["connect", "[fd00::5]:80", "--timeout", "500ms"]}]}}
    assert agnhost_connect(spaced) == ("fd00::5", 80, 0.5)
    failed = {**client, "status": terminated_status(client, "10.0.0.8", "192.168.1.2", 1, "TIMEOUT\n")}
    assert classify(failed) == ("timeout", "TIMEOUT") and failed["status"]["phase"] == "Failed"
    connected = {**client, "status": terminated_status(client, "10.0.0.8", "192.168.1.2", 0, "")}
    assert classify(connected) == ("ok", "connected") and connected["status"]["phase"] == "Succeeded"


def test_verify_cli_errors_are_one_line(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """A missing --kubeconfig is a usage error (exit 2); an unreadable file and an unreachable API server are one
    `error:` line each (exit 1), naming the file or the server."""
    from calico_component import cli
    from tests.fake_kube import closed_port, kubeconfig_for

    with pytest.raises(SystemExit) as usage:
        cli.main(["verify"])
    assert usage.value.code == 2 and "--kubeconfig" in capsys.readouterr().err
    assert cli.main(["verify", "--kubeconfig", str(tmp_path / "absent")]) == 1
    assert capsys.readouterr().err == f"error: cannot read --kubeconfig {tmp_path / 'absent'}: No such file or directory\n"
    config = tmp_path / "config"
    url = closed_port()
    config.write_text(kubeconfig_for(url))
    assert cli.main(["verify", "--kubeconfig", str(config)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot reach the API server {url}") and err.count("\n") == 1
