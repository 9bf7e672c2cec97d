"""Pods on a local dataplane node other than calico-node: their runtimes and the statuses a kubelet reports."""

from __future__ import annotations

import re
import subprocess
import threading
from pathlib import Path
from typing import Any, Protocol

from . import podspec
from .node_host import Events, NodeConfig, now, stop_process
from .pod_network import PodNetwork, netns_name
from .podspec import Obj


class Context(Protocol):
    """What a pod's runtime needs from its node."""

    cfg: NodeConfig
    events: Events
    network: PodNetwork

    def api(self) -> Any: ...
    def allocate_ip(self, uid: str) -> str: ...
    def release_ip(self, uid: str) -> None: ...


def running_status(pod: Obj, ip: str, host_ip: str, ready: bool, restarts: int = 0,
                    message: str | None = None) -> dict[str, Any]:
    """A Running pod's status, every container started; ``ready`` for the Ready conditions and containers."""
    flag = "True" if ready else "False"
    stamp = now()
    conditions = [{"type": t, "status": s, "lastTransitionTime": stamp} for t, s in (
        ("PodScheduled", "True"), ("Initialized", "True"), ("ContainersReady", flag), ("Ready", flag))]
    containers = [{"name": c["name"], "image": c["image"], "imageID": c["image"], "ready": ready, "started": True,
                   "restartCount": restarts, "state": {"running": {"startedAt": stamp}}}
                  for c in pod["spec"]["containers"]]
    status: dict[str, Any] = {"phase": "Running", "conditions": conditions, "containerStatuses": containers,
                              "hostIP": host_ip, "hostIPs": [{"ip": host_ip}], "podIP": ip, "podIPs": [{"ip": ip}],
                              "startTime": pod.get("status", {}).get("startTime") or stamp}
    if message:
        status["message"] = message
    return status


def waiting_status(pod: Obj, reason: str, message: str) -> dict[str, Any]:
    """A pod whose container cannot start (its image cannot be had): Pending, never ready."""
    stamp = now()
    return {"phase": "Pending", "message": message,
            "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": stamp},
                           {"type": "Ready", "status": "False", "reason": "ContainersNotReady",
                            "lastTransitionTime": stamp}],
            "containerStatuses": [{"name": c["name"], "image": c["image"], "imageID": "", "ready": False,
                                   "restartCount": 0, "state": {"waiting": {"reason": reason, "message": message}}}
                                  for c in pod["spec"]["containers"]]}


class PodRuntime:
    """One pod on this node; ``status()`` is what its status should say now (None: nothing to report yet)."""

    def __init__(self, pod: Obj, ctx: Context) -> None:
        self.pod = pod
        self.ctx = ctx
        self.key = f"{pod['metadata'].get('namespace', 'default')}/{pod['metadata']['name']}"

    def start(self) -> None:
        """Make the pod run (returns quickly; slow work belongs in a thread of the runtime's own)."""

    def stop(self) -> None:
        """Stop everything the pod runs and give back what it took (its address, its namespace)."""

    def status(self) -> dict[str, Any] | None:
        raise NotImplementedError


class ImageUnavailable(PodRuntime):
    """A container whose image cannot be had here: a registry that never answers, or no local Calico build."""

    reason = "ImagePullBackOff"

    def __init__(self, pod: Obj, ctx: Context, message: str) -> None:
        super().__init__(pod, ctx)
        self.message = message

    def status(self) -> dict[str, Any]:
        return waiting_status(self.pod, self.reason, self.message)


class BadContainerConfig(ImageUnavailable):
    """A container whose arguments cannot be run as given (a kubelet's CreateContainerConfigError)."""

    reason = "CreateContainerConfigError"


class HostNetworkPod(PodRuntime):
    """A host-network pod other than calico-node (calico-typha): it shares the node's address, nothing runs."""

    def status(self) -> dict[str, Any]:
        return running_status(self.pod, self.ctx.cfg.node_ip, self.ctx.cfg.node_ip, ready=True)


class WorkloadPod(PodRuntime):
    """A pod with a network namespace of its own (``<namespace>.<name>`` under the node's /run/netns), attached by the
    node's ``PodNetwork``, and a stand-in container answering on its TCP ports."""

    def __init__(self, pod: Obj, ctx: Context) -> None:
        super().__init__(pod, ctx)
        meta = pod["metadata"]
        self.netns = netns_name(meta.get("namespace", "default"), meta["name"])
        self.host_if = ""
        self.ip = ""
        self.server: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.ip, self.host_if = self.ctx.network.attach(self.pod, self.netns)
        ports = podspec.tcp_ports(self.pod)
        if ports:
            self.server = self._serve(ports)
        self.ctx.events("pod-started", pod=self.key, ip=self.ip, interface=self.host_if)

    def _serve(self, ports: list[int]) -> subprocess.Popen[bytes]:
        log = Path(self.ctx.cfg.workdir) / "pods" / f"{self.netns}.log"
        log.parent.mkdir(exist_ok=True)
        with log.open("ab") as out:
            return subprocess.Popen(["ip", "netns", "exec", self.netns, self.ctx.cfg.python, self.ctx.cfg.probe_script,
                                     "serve", *map(str, ports), "--name", self.key], stdout=out, stderr=out)

    def stop(self) -> None:
        if self.server is not None:
            stop_process(self.server)
        self.ctx.network.detach(self.pod, self.netns)
        self.ctx.events("pod-stopped", pod=self.key)

    def status(self) -> dict[str, Any]:
        return running_status(self.pod, self.ip, self.ctx.cfg.node_ip, ready=True)


def terminated_status(pod: Obj, ip: str, host_ip: str, code: int, message: str) -> dict[str, Any]:
    """A run-to-completion pod whose only container exited with ``code``."""
    stamp = now()
    container = pod["spec"]["containers"][0]
    state = {"exitCode": code, "reason": "Completed" if code == 0 else "Error", "message": message,
             "startedAt": stamp, "finishedAt": stamp}
    return {"phase": "Succeeded" if code == 0 else "Failed", "hostIP": host_ip, "podIP": ip, "podIPs": [{"ip": ip}],
            "conditions": [{"type": "Ready", "status": "False", "reason": "PodCompleted", "lastTransitionTime": stamp}],
            "containerStatuses": [{"name": container["name"], "image": container["image"], "imageID": container["image"],
                                   "ready": False, "started": False, "restartCount": 0,
                                   "state": {"terminated": state}}]}


#: What agnhost's `connect` prints on stderr for each outcome of probe.attempt (exit 1), as its docs define.
_AGNHOST_FAILURE = {"timeout": "TIMEOUT", "refused": "REFUSED"}


#: agnhost's --timeout 0 (its default) leaves the attempt to the kernel, which gives up after about two minutes.
_KERNEL_CONNECT_TIMEOUT = 130.0
_GO_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m)$")


def go_seconds(text: str) -> float:
    """Seconds of a Go duration as agnhost's flags take it (``500ms``, ``5s``, ``1m``; ``0`` for none)."""
    if text == "0":
        return _KERNEL_CONNECT_TIMEOUT
    match = _GO_DURATION.match(text)
    if not match:
        raise podspec.PodSpecError(f"agnhost connect --timeout {text!r} is not a duration like 5s or 500ms")
    return float(match[1]) * {"ms": 0.001, "s": 1.0, "m": 60.0}[match[2]]


def _flag(args: list[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
        if arg == name and i + 1 < len(args):
            return args[i + 1]
    return None


def agnhost_connect(pod: Obj) -> tuple[str, int, float] | None:
    """(host, port, timeout) when the pod's container is a one-shot ``agnhost connect HOST:PORT [--timeout D]``."""
    args = [str(a) for a in podspec.container(pod).get("args") or []]
    if pod["spec"].get("restartPolicy") != "Never" or len(args) < 2 or args[0] != "connect":
        return None
    host, _, port = args[1].rpartition(":")
    return host.strip("[]"), int(port), go_seconds(_flag(args[2:], "--timeout") or "0")


class ProbeClientPod(WorkloadPod):
    """A one-shot pod running ``agnhost connect``: the stand-in makes the same single attempt from the pod's network
    namespace (probe.py connect) and reports the container's exit as agnhost would: 0, or 1 with its stderr."""

    def __init__(self, pod: Obj, ctx: Context, target: tuple[str, int, float]) -> None:
        super().__init__(pod, ctx)
        self.target = target
        self.exit: tuple[int, str] | None = None

    def start(self) -> None:
        super().start()
        threading.Thread(target=self._connect, name=f"connect-{self.key}", daemon=True).start()

    def _connect(self) -> None:
        host, port, timeout = self.target
        try:
            proc = subprocess.run(["ip", "netns", "exec", self.netns, self.ctx.cfg.python, self.ctx.cfg.probe_script,
                                   "connect", host, str(port), "--timeout", str(timeout)],
                                  capture_output=True, text=True, timeout=timeout + 30)
            outcome = proc.stdout.strip() or f"error ({proc.stderr.strip()[-200:]})"
        except (OSError, subprocess.SubprocessError) as exc:
            outcome = f"error ({type(exc).__name__})"  # the container still ends, as agnhost's would
        self.exit = (0, "") if outcome == "ok" else (1, _AGNHOST_FAILURE.get(outcome, f"OTHER: {outcome}") + "\n")
        self.ctx.events("probe-connect", pod=self.key, target=f"{host}:{port}", outcome=outcome)

    def status(self) -> dict[str, Any]:
        if self.exit is None:
            return running_status(self.pod, self.ip, self.ctx.cfg.node_ip, ready=True)
        return terminated_status(self.pod, self.ip, self.ctx.cfg.node_ip, *self.exit)

