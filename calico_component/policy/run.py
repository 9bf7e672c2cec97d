"""The policy check against a live cluster: create the plan's namespace, probe pods and policies, run each step on
every sampled node, and delete everything again (also on failure and Ctrl-C)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..cluster.kube import REQUEST_TIMEOUT, Kube, session
from ..errors import PolicyCheckError
from . import plan as plan

#: Container waiting reasons after which a probe pod will not start by itself.
_STUCK = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError",
                    "CreateContainerError", "RunContainerError", "CrashLoopBackOff"})
_T = TypeVar("_T")
#: A namespace of the check older than this is a leftover of an interrupted run (a younger one may be another run's).
LEFTOVER_AGE_SECONDS = 3600.0


class RunStoppedError(Exception):
    """The run is being stopped (Ctrl-C in the main thread): workers stop creating pods and waiting."""


@dataclass(frozen=True)
class ProbeResult:
    """A probe's last outcome, what the pod said, and how many pods it took."""

    probe: plan.Probe
    outcome: plan.Outcome
    detail: str
    attempts: int

    @property
    def passed(self) -> bool:
        return self.outcome == self.probe.expect


@dataclass
class NodeResult:
    """Every probe run on one node, step by step; ``not_run`` says why the node could not be checked at all."""

    node: str
    steps: list[tuple[plan.Step, list[ProbeResult]]] = field(default_factory=list)
    not_run: str = ""

    def first_failure(self) -> tuple[plan.Step, ProbeResult] | None:
        for step, results in self.steps:
            for result in results:
                if not result.passed:
                    return step, result
        return None

    @property
    def enforced(self) -> bool:
        return not self.not_run and len(self.steps) == len(plan.STEPS) and self.first_failure() is None




def _json(response: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(response.data)
    return data


class Cluster:
    """The few API calls the check makes, as plain JSON objects (``kube``'s clients)."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self.core: Any = kube.core
        self.net: Any = kube.net

    def nodes(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = _json(self.core.list_node(_preload_content=False, _request_timeout=REQUEST_TIMEOUT))["items"]
        return items

    def create(self, obj: plan.Obj) -> None:
        kind, ns = obj["kind"], obj["metadata"].get("namespace")
        if kind == "Namespace":
            self.core.create_namespace(obj, _request_timeout=REQUEST_TIMEOUT)
        elif kind == "Pod":
            self.core.create_namespaced_pod(ns, obj, _request_timeout=REQUEST_TIMEOUT)
        else:
            self.net.create_namespaced_network_policy(ns, obj, _request_timeout=REQUEST_TIMEOUT)

    def pod(self, namespace: str, name: str) -> dict[str, Any]:
        return _json(self.core.read_namespaced_pod(name, namespace, _preload_content=False, _request_timeout=REQUEST_TIMEOUT))

    def delete_pod(self, namespace: str, name: str) -> None:
        with contextlib.suppress(Exception):
            self.core.delete_namespaced_pod(name, namespace, grace_period_seconds=0, _request_timeout=REQUEST_TIMEOUT)

    def check_namespaces(self) -> dict[str, str]:
        """The check's namespaces: name -> creationTimestamp (RFC 3339)."""
        listing = _json(self.core.list_namespace(label_selector=plan.CHECK_LABEL, _preload_content=False,
                                                 _request_timeout=REQUEST_TIMEOUT))
        return {str(n["metadata"]["name"]): str(n["metadata"].get("creationTimestamp") or "") for n in listing["items"]}

    def delete_namespace(self, name: str) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.core.delete_namespace(name, grace_period_seconds=0, _request_timeout=REQUEST_TIMEOUT)
        except ApiException as exc:
            if exc.status != 404:
                raise


def classify(pod: dict[str, Any]) -> tuple[plan.Outcome, str] | None:
    """A finished probe pod's outcome and its message; None while it has not finished (or not started)."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    state = statuses[0].get("state") or {} if statuses else {}
    if "terminated" in state:
        code, message = state["terminated"].get("exitCode"), str(state["terminated"].get("message") or "").strip()
        if code == 0:
            return "ok", "connected"
        for outcome, marker in (("timeout", "TIMEOUT"), ("refused", "REFUSED")):
            if marker in message:
                return outcome, message  # type: ignore[return-value]
        return "other", message or f"exit code {code}"
    reason = (state.get("waiting") or {}).get("reason", "")
    if reason in _STUCK:
        return "not-run", f"{reason}: {(state.get('waiting') or {}).get('message', '')}".rstrip(": ")
    return _rejected(pod.get("status") or {})


def _rejected(status: dict[str, Any]) -> tuple[plan.Outcome, str] | None:
    """A pod the node refused before any container ran (OutOfcpu, NodeAffinity, an eviction): Failed, no status."""
    if status.get("phase") in ("Failed", "Succeeded") and not status.get("containerStatuses"):
        return "not-run", f"the node refused the pod: {status.get('reason') or status['phase']}: {status.get('message', '')}"
    return None


def _phase_text(pod: dict[str, Any]) -> str:
    status = pod.get("status") or {}
    return f"phase {status.get('phase') or 'Pending'}"


def _listener_state(node: str, name: str, pod: dict[str, Any]) -> tuple[str, str] | None:
    """(address, '') once every container is ready; ('', why) when it will not start; None while it may still."""
    status = pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    if status.get("podIP") and statuses and all(s.get("ready") for s in statuses):
        return str(status["podIP"]), ""
    for waiting in ((s.get("state") or {}).get("waiting") or {} for s in statuses):
        if waiting.get("reason") in _STUCK:
            return "", f"pod {name} on {node}: {waiting['reason']}: {waiting.get('message', '')}"
    rejected = _rejected(status)
    return ("", f"pod {name} on {node}: {rejected[1]}") if rejected else None


@dataclass
class Runner:
    """One run of the plan; ``sleep``/``clock`` are injectable for tests of the waiting logic; ``stop`` set makes every
    worker give up at its next wait."""

    cluster: Cluster
    settings: plan.Settings
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    poll: float = 0.5
    stop: threading.Event = field(default_factory=threading.Event)

    def _pause(self, seconds: float) -> None:
        if self.stop.is_set():
            raise RunStoppedError
        self.sleep(seconds)

    def _poll(self, name: str, done: Callable[[dict[str, Any]], _T | None]) -> tuple[_T | None, dict[str, Any]]:
        """Read pod ``name`` until ``done`` makes something of it or ``pod_timeout_seconds`` pass; also the last read."""
        deadline = self.clock() + self.settings.pod_timeout_seconds
        pod: dict[str, Any] = {}
        while self.clock() < deadline:
            pod = self.cluster.pod(self.settings.namespace, name)
            found = done(pod)
            if found is not None:
                return found, pod
            self._pause(self.poll)
        return None, pod

    def _wait_pod(self, name: str) -> tuple[plan.Outcome, str]:
        found, pod = self._poll(name, classify)
        if found is not None:
            return found
        return "not-run", (f"pod {name} did not finish within {self.settings.pod_timeout_seconds:g}s ({_phase_text(pod)}): "
                           "no container ran there")

    def _listening(self, node: str, name: str) -> tuple[str, str]:
        """A listener's address once all its containers are ready (listening), or ('', why not)."""
        found, pod = self._poll(name, lambda pod: _listener_state(node, name, pod))
        if found is not None:
            return found
        return "", f"pod {name} on {node} not ready within {self.settings.pod_timeout_seconds:g}s ({_phase_text(pod)})"

    def addresses(self, node: str, index: int) -> tuple[dict[plan.Target, str], str]:
        """The server's and the bystander's addresses, or why the node cannot be checked."""
        found: dict[plan.Target, str] = {}
        for target, pod in plan.listener_pods(self.settings, node, index).items():
            ip, why = self._listening(node, pod["metadata"]["name"])
            if not ip:
                return {}, why
            found[target] = ip
        return found, ""

    def attempt(self, node: str, index: int, step: int, probe: plan.Probe, ip: str,
                started: float) -> ProbeResult:
        """Run ``probe`` until it has its expected outcome or the step's settle time is over (policy takes effect
        within moments of its creation, not at once)."""
        attempts = 0
        while True:
            attempts += 1
            pod = plan.client_pod(self.settings, node, index, step, probe, attempts, ip)
            self._pause(0)
            self.cluster.create(pod)
            try:
                outcome, detail = self._wait_pod(pod["metadata"]["name"])
            finally:
                self.cluster.delete_pod(self.settings.namespace, pod["metadata"]["name"])
            done = outcome in (probe.expect, "not-run") or self.clock() - started >= self.settings.settle_seconds
            if done:
                return ProbeResult(probe, outcome, detail, attempts)
            self._pause(1.0)

    def run_step(self, result: NodeResult, index: int, number: int, ips: dict[plan.Target, str]) -> bool:
        step, started = plan.STEPS[number], self.clock()
        results: list[ProbeResult] = []
        for probe in step.probes:
            results.append(self.attempt(result.node, index, number, probe, ips[probe.target], started))
            if not results[-1].passed:
                break
        result.steps.append((step, results))
        return all(r.passed for r in results)


def _age(created: str, now: float) -> float:
    from datetime import datetime

    try:
        return now - datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def sweep(cluster: Cluster, now: float | None = None) -> list[str]:
    """Delete the check's namespaces older than LEFTOVER_AGE_SECONDS (left by interrupted runs; younger ones may
    belong to a run going on elsewhere); return their names."""
    now = time.time() if now is None else now
    left = [n for n, created in cluster.check_namespaces().items() if _age(created, now) > LEFTOVER_AGE_SECONDS]
    for name in left:
        cluster.delete_namespace(name)
    return left


def _wait_gone(runner: Runner, name: str, timeout: float) -> None:
    """Until the namespace ``name`` finished terminating, with the runner's clock and sleep (not its stop: the
    namespace is waited for also when the run was stopped)."""
    deadline = runner.clock() + timeout
    while name in runner.cluster.check_namespaces():
        if runner.clock() > deadline:
            raise PolicyCheckError(f"namespace {name} is still terminating after {timeout:g}s; delete it with "
                                   f"`kubectl delete namespace {name}`")
        runner.sleep(runner.poll)


@contextlib.contextmanager
def check_namespace(runner: Runner, cleanup_timeout: float = 120) -> Iterator[None]:
    """The run's namespace, after sweeping earlier leftovers; deleted (and waited for) however the run ends."""
    cluster, settings = runner.cluster, runner.settings
    sweep(cluster)
    cluster.create(plan.namespace(settings))
    try:
        yield
    finally:
        cluster.delete_namespace(settings.namespace)
        _wait_gone(runner, settings.namespace, cleanup_timeout)


def _named(cluster: Cluster, nodes: Sequence[str]) -> list[str]:
    """The nodes asked for, each checked to exist (a pod pinned to a missing node would wait forever)."""
    known = sorted(str(n["metadata"]["name"]) for n in cluster.nodes())
    missing = [n for n in nodes if n not in known]
    if missing:
        raise PolicyCheckError(f"no node named {', '.join(missing)} in the cluster; its nodes: {', '.join(known)}")
    return list(dict.fromkeys(nodes))


def run_check(cluster: Cluster, settings: plan.Settings, nodes: Sequence[str] | None = None,
              runner: Runner | None = None) -> list[NodeResult]:
    """Check policy on ``nodes`` (default: a sample of the cluster's), one step at a time on all of them at once."""
    names = _named(cluster, nodes) if nodes else plan.sample_nodes(cluster.nodes(), settings.nodes)
    if not names:
        raise PolicyCheckError("no Ready, schedulable node to check policy on")
    results = [NodeResult(n) for n in names]
    runner = runner or Runner(cluster, settings)
    with check_namespace(runner):
        pool = ThreadPoolExecutor(max_workers=min(8, len(names)))
        try:
            _run_nodes(cluster, settings, runner, pool, results)
        except BaseException:
            runner.stop.set()  # Ctrl-C: the workers stop at their next wait, the namespace goes at once
            raise
        finally:
            pool.shutdown(wait=not runner.stop.is_set(), cancel_futures=True)
    return results


def _map(pool: ThreadPoolExecutor, fn: Callable[..., _T], *args: Iterable[Any]) -> list[_T]:
    """``pool.map`` whose waiting wakes every half second, so a Ctrl-C the kernel handed to a worker thread is raised
    in the main thread at once rather than when the workers finish (a blocked lock wait is only interrupted in the
    thread that received the signal)."""
    futures = [pool.submit(fn, *call) for call in zip(*args, strict=True)]
    pending = set(futures)
    while pending:
        _done, pending = wait(pending, timeout=0.5, return_when=FIRST_EXCEPTION)
        failed = next((f for f in futures if f.done() and f.exception() is not None), None)
        if failed is not None:
            return [failed.result()]  # raises the worker's error; the caller stops the rest
    return [f.result() for f in futures]


def _run_nodes(cluster: Cluster, settings: plan.Settings, runner: Runner, pool: ThreadPoolExecutor,
               results: list[NodeResult]) -> None:
    for index, result in enumerate(results):
        for pod in plan.listener_pods(settings, result.node, index).values():
            cluster.create(pod)
    found = _map(pool, runner.addresses, [r.node for r in results], range(len(results)))
    for result, (_ips, why) in zip(results, found, strict=True):
        result.not_run = why
    _run_steps(cluster, settings, runner, pool, results, [ips for ips, _ in found])


def _run_steps(cluster: Cluster, settings: plan.Settings, runner: Runner, pool: ThreadPoolExecutor,
               results: list[NodeResult], ips: list[dict[plan.Target, str]]) -> None:
    """Step by step: create the step's new policies, then run its probes on every node still passing, in parallel."""
    policies, created = plan.policies(settings), set[str]()
    for number, step in enumerate(plan.STEPS):
        for name in step.policies:
            if name not in created:
                cluster.create(policies[name])
                created.add(name)
        active = [i for i, r in enumerate(results) if not r.not_run and r.first_failure() is None]
        _map(pool, runner.run_step, [results[i] for i in active], active, [number] * len(active),
             [ips[i] for i in active])
        for i in active:
            failure = results[i].first_failure()
            if failure is not None and failure[1].outcome == "not-run":
                results[i].not_run = failure[1].detail


def new_settings(nodes: int = 3, image_registry: str | None = None, pod_timeout_seconds: float = 120) -> plan.Settings:
    """Settings for one run: a fresh namespace name, the probe image moved to ``image_registry``."""
    import secrets

    return plan.Settings(namespace=plan.namespace_name(secrets.token_hex(3)), nodes=nodes,
                         image=plan.probe_image(image_registry), pod_timeout_seconds=pod_timeout_seconds)


def check_policy(kubeconfig: str, settings: plan.Settings, nodes: Sequence[str] | None = None,
                 stop: threading.Event | None = None) -> list[NodeResult]:
    """Run the check on the cluster of ``kubeconfig`` (its contents); see ``run_check``. Setting ``stop`` (Ctrl-C in
    `pulumi up`) makes every worker give up at its next wait; the namespace is deleted all the same."""
    import urllib3
    from kubernetes.client.exceptions import ApiException

    with session(kubeconfig, "check that network policy is enforced") as kube:
        runner = Runner(Cluster(kube), settings, stop=stop or threading.Event())
        try:
            return run_check(runner.cluster, settings, nodes, runner)
        except ApiException as exc:
            raise PolicyCheckError(f"the API server refused the policy check: HTTP {exc.status} {exc.reason}; it "
                                   "needs to create and delete namespaces, pods and networkpolicies, and list nodes"
                                   ) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise PolicyCheckError(f"cannot reach the API server {kube.server} ({type(exc).__name__}); check the "
                                   "kubeconfig and that this machine can reach the cluster's endpoint") from None
