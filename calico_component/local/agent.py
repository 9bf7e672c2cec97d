"""The agent of a local node with a real dataplane: PID 1 of the node's own pid, network and mount namespaces.

``calico_component.local.dataplane`` starts it under ``unshare``; everything it starts lives in
those namespaces and dies with it. It is the node's kubelet:

- the node's network: a dummy ``eth0`` with the node's address, IP forwarding, and one rule in each
  filter chain, there before Calico (a node's own firewall), so where Felix inserts its chains shows;
- the API server, reached through a forwarder on the node's loopback (``apiproxy``);
- every pod bound to the node: calico-node's pod runs Calico's own processes (``CalicoNodePod``), built
  for the pod's image release, with the pod's environment as the API server has it; other pods get a
  network namespace, a veth and an address, and a stand-in container listening on their TCP ports
  (``WorkloadPod``); other host-network pods and unpullable images only get a status.

Run: ``python -m calico_component.local.agent CONFIG.json`` (only the dataplane module does).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from . import podspec
from .apiproxy import ApiForwarder
from .podspec import Obj

#: Where the calico-node pod's ServiceAccount is mounted, as a kubelet mounts it (client-go's in-cluster path).
SERVICEACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
#: The comment of the rules the node has before Calico starts (one in INPUT, FORWARD and OUTPUT).
NODE_RULE_COMMENT = "calico-oke-local: node rule added before Calico"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: Seconds a stopping container's processes get between SIGTERM and SIGKILL.
STOP_GRACE = 5.0
#: The node's CNI configuration directory, where install-cni writes (under /etc's overlay: the machine's is untouched).
CNI_NET_DIR = Path("/etc/cni/net.d")


@dataclass(frozen=True)
class NodeConfig:
    """Everything the agent needs, written by the parent as JSON."""

    node: str
    node_ip: str
    pod_cidr: str
    api_upstream: tuple[str, int]
    api_listen_port: int
    kubeconfig: str
    ca_file: str
    workdir: str
    host_netns_fd: int
    python: str
    probe_script: str
    #: Release (``v3.32.0``) -> calico-node binary.
    calico_node: Mapping[str, str]
    #: Release -> Calico's CNI plugin binary (flannel-overlay: install-cni puts it on the node as calico, calico-ipam).
    calico_cni: Mapping[str, str] = field(default_factory=dict)
    #: ``vcn-native``: pods get an address from ``pod_cidr`` and a veth named ``pod_interface_prefix`` + Calico's hash,
    #: as the OCI VCN-native CNI is assumed to do; ``flannel-overlay``: Calico's own CNI plugin and IPAM, once
    #: calico-node's install-cni has put them on the node (until then pods wait, as a kubelet without a CNI does).
    pod_network: str = "vcn-native"
    #: Prefix of the host-side veth of pods in vcn-native (what the VCN-native CNI names them with).
    pod_interface_prefix: str = "oci"

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> NodeConfig:
        raw = json.loads(path.read_text())
        raw["api_upstream"] = tuple(raw["api_upstream"])
        return cls(**raw)

    @property
    def cni_bin(self) -> Path:
        """The node's CNI binary directory (a kubelet's --cni-bin-dir)."""
        return Path(self.workdir) / "cni-bin"


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run one command inside the node (``ip``, ``iptables-nft``, ``mount``); fail naming it and its stderr."""
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc


class Events:
    """The node's event log (``events.log`` in its directory): one timestamped line per thing that happened."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()

    def __call__(self, what: str, **details: object) -> None:
        """One line: time, what, then ``key=value`` pairs (whitespace in a value becomes ``_``, long ones are cut)."""
        values = {k: "_".join(str(v).split())[:200] for k, v in details.items()}
        line = " ".join([f"{time.time():.3f}", what, *(f"{k}={v}" for k, v in values.items())])
        with self._lock, self._path.open("a") as fh:
            fh.write(line + "\n")


# ---------------------------------------------------------------------------------------------- the node's host


def prepare_mounts(workdir: Path) -> None:
    """/run a tmpfs, /var and /etc overlays (their changes kept under ``workdir``): nothing the node writes leaves it."""
    run("mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", "/run")
    for lower in ("/var", "/etc"):
        upper, work = workdir / f"{lower.strip('/')}-upper", workdir / f"{lower.strip('/')}-work"
        upper.mkdir(exist_ok=True)
        work.mkdir(exist_ok=True)
        run("mount", "-t", "overlay", "overlay", "-o", f"lowerdir={lower},upperdir={upper},workdir={work}", lower)
    for path in ("/run/netns", "/run/calico", "/var/lib/calico", "/var/log/calico/cni", str(SERVICEACCOUNT_DIR),
                 str(CNI_NET_DIR)):
        Path(path).mkdir(parents=True, exist_ok=True)


def prepare_network(cfg: NodeConfig) -> None:
    """The node's own interfaces: loopback, and ``eth0``, a veth to an ``uplink`` namespace where packets end (the
    node's VCN: nothing outside the node is reachable; the kernel here has no dummy interfaces)."""
    run("ip", "link", "set", "lo", "up")
    run("ip", "netns", "add", "uplink")
    run("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "uplink0", "netns", "uplink")
    run("ip", "-n", "uplink", "link", "set", "uplink0", "up")
    run("ip", "addr", "add", f"{cfg.node_ip}/16", "dev", "eth0")
    run("ip", "link", "set", "eth0", "up")
    run("ip", "route", "add", "default", "dev", "eth0")
    Path("/proc/sys/net/ipv4/ip_forward").write_text("1")


def add_node_rules() -> None:
    """One rule per filter chain in the nft backend before Calico starts, as a node's own firewall has."""
    for chain in ("INPUT", "FORWARD", "OUTPUT"):
        run("iptables-nft", "-A", chain, "-m", "comment", "--comment", NODE_RULE_COMMENT)


# ---------------------------------------------------------------------------------------------- pods


class Context(Protocol):
    """What a pod's runtime needs from its node."""

    cfg: NodeConfig
    events: Events
    network: PodNetwork

    def api(self) -> Any: ...
    def allocate_ip(self, uid: str) -> str: ...
    def release_ip(self, uid: str) -> None: ...


def _running_status(pod: Obj, ip: str, host_ip: str, ready: bool, restarts: int = 0,
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


def _waiting_status(pod: Obj, reason: str, message: str) -> dict[str, Any]:
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
        return _waiting_status(self.pod, self.reason, self.message)


class BadContainerConfig(ImageUnavailable):
    """A container whose arguments cannot be run as given (a kubelet's CreateContainerConfigError)."""

    reason = "CreateContainerConfigError"


class HostNetworkPod(PodRuntime):
    """A host-network pod other than calico-node (calico-typha): it shares the node's address, nothing runs."""

    def status(self) -> dict[str, Any]:
        return _running_status(self.pod, self.ctx.cfg.node_ip, self.ctx.cfg.node_ip, ready=True)


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
        return _running_status(self.pod, self.ip, self.ctx.cfg.node_ip, ready=True)


def _terminated_status(pod: Obj, ip: str, host_ip: str, code: int, message: str) -> dict[str, Any]:
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
            return _running_status(self.pod, self.ip, self.ctx.cfg.node_ip, ready=True)
        return _terminated_status(self.pod, self.ip, self.ctx.cfg.node_ip, *self.exit)


class NetworkNotReadyError(RuntimeError):
    """The node has no CNI configuration yet (a kubelet's NetworkPluginNotReady): the pod waits and is tried again."""


class PodNetwork(Protocol):
    """How pods on this node get their interface and address (a kubelet's CNI)."""

    def attach(self, pod: Obj, netns: str) -> tuple[str, str]:
        """Create the pod's network namespace and attach it; return (address, host-side interface)."""
        ...

    def detach(self, pod: Obj, netns: str) -> None:
        """Undo ``attach`` (never fails: a pod being removed must go)."""
        ...


@dataclass
class OciStandIn:
    """vcn-native: what the OCI VCN-native CNI is assumed to do. An address from the node's range, and a veth whose host
    side is ``<prefix>`` + Calico's hash of the pod; a /32 in the pod, a route to it on the node, the pod's default
    route via 169.254.1.1 answered by proxy ARP."""

    prefix: str
    allocate_ip: Any
    release_ip: Any

    def attach(self, pod: Obj, netns: str) -> tuple[str, str]:
        meta = pod["metadata"]
        host_if = podspec.veth_name(self.prefix, meta.get("namespace", "default"), meta["name"])
        ip = str(self.allocate_ip(meta["uid"]))
        plumb_pod(netns, host_if, ip)
        return ip, host_if

    def detach(self, pod: Obj, netns: str) -> None:
        run("ip", "netns", "del", netns, check=False)  # the veth pair and the node's route go with it
        self.release_ip(pod["metadata"]["uid"])


@dataclass
class CalicoCni:
    """flannel-overlay: Calico's own CNI plugin (and calico-ipam), with the configuration install-cni wrote."""

    bin_dir: Path
    conf_dir: Path

    def conflist(self) -> Path | None:
        """The configuration a kubelet uses: the first ``*.conflist`` of the CNI configuration directory."""
        found = sorted(self.conf_dir.glob("*.conflist"))
        return found[0] if found else None

    def _invoke(self, command: str, pod: Obj, netns: str) -> dict[str, Any]:
        meta = pod["metadata"]
        env = {"PATH": PATH, "CNI_COMMAND": command, "CNI_CONTAINERID": meta["uid"], "CNI_NETNS": f"/run/netns/{netns}",
               "CNI_IFNAME": "eth0", "CNI_PATH": str(self.bin_dir),
               "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE={meta.get('namespace', 'default')};"
                           f"K8S_POD_NAME={meta['name']};K8S_POD_INFRA_CONTAINER_ID={meta['uid']};K8S_POD_UID={meta['uid']}"}
        conflist = self.conflist()
        if conflist is None:
            raise NetworkNotReadyError("no CNI configuration on the node yet")
        conf = podspec.cni_plugin_conf(json.loads(conflist.read_text()))
        proc = subprocess.run([str(self.bin_dir / "calico")], input=json.dumps(conf), env=env, capture_output=True,
                              text=True, timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"CNI {command} exited {proc.returncode}: {(proc.stdout + proc.stderr).strip()[-400:]}")
        result: dict[str, Any] = json.loads(proc.stdout) if proc.stdout.strip() else {}
        return result

    def attach(self, pod: Obj, netns: str) -> tuple[str, str]:
        if self.conflist() is None:
            raise NetworkNotReadyError("no CNI configuration on the node yet")
        run("ip", "netns", "add", netns)
        try:
            result = self._invoke("ADD", pod, netns)
        except Exception:
            run("ip", "netns", "del", netns, check=False)
            raise
        host_if = next((i["name"] for i in result.get("interfaces") or [] if not i.get("sandbox")), "")
        return podspec.cni_result_address(result), host_if

    def detach(self, pod: Obj, netns: str) -> None:
        with contextlib.suppress(Exception):
            self._invoke("DEL", pod, netns)
        run("ip", "netns", "del", netns, check=False)


def netns_name(namespace: str, name: str) -> str:
    """The network namespace of a pod on a local dataplane node."""
    return f"{namespace}.{name}"


def plumb_pod(netns: str, host_if: str, ip: str) -> None:
    """What a CNI plugin does for a pod: its namespace, a veth into it, its address and routes on both sides."""
    run("ip", "netns", "add", netns)
    run("ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", netns)
    inside = ("ip", "-n", netns)
    run(*inside, "link", "set", "lo", "up")
    run(*inside, "addr", "add", f"{ip}/32", "dev", "eth0")
    run(*inside, "link", "set", "eth0", "up")
    run(*inside, "route", "add", "169.254.1.1", "dev", "eth0", "scope", "link")
    run(*inside, "route", "add", "default", "via", "169.254.1.1", "dev", "eth0")
    run("ip", "link", "set", host_if, "up")
    Path(f"/proc/sys/net/ipv4/conf/{host_if}/proxy_arp").write_text("1")
    Path(f"/proc/sys/net/ipv4/neigh/{host_if}/proxy_delay").write_text("0")
    run("ip", "route", "add", f"{ip}/32", "dev", host_if, "scope", "link")


def stop_process(proc: subprocess.Popen[Any], grace: float = STOP_GRACE) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; reaped either way."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------------------------------------- calico-node


class StartupError(RuntimeError):
    """A step of calico/node's start-up (``-startup``, the first tunnel address allocation) failed."""


@dataclass
class Service:
    """One runit service of calico/node: a ``calico-node`` flag run and restarted by its supervisor."""

    flag: str
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    started_at: float = 0.0
    #: Exits in a row that came soon after a start (each doubles the wait before the next start).
    quick_exits: int = 0
    next_start: float = 0.0

    def exited(self, now: float) -> bool:
        """Whether its process has exited; if so, when to start it again (runit's second, longer after quick exits)."""
        if self.proc is None or self.proc.poll() is None or self.next_start:
            return False
        self.quick_exits = self.quick_exits + 1 if now - self.started_at < 10 else 0
        self.next_start = now + min(30.0, 2.0 ** self.quick_exits) if self.quick_exits else now + 1.0
        return True


@dataclass
class CalicoState:
    """What the node's Calico is doing, written to ``calico.json`` for tests and the demo to read."""

    pod: str
    uid: str
    release: str
    binary: str
    #: The directory of this pod's Calico logs (``felix.log``, ``startup.log``, one per service).
    logs: str = ""
    felix_env: dict[str, str] = field(default_factory=dict)
    felix_pid: int | None = None
    ready: bool = False
    restarts: int = 0
    not_run: list[str] = field(default_factory=list)
    error: str = ""


class CalicoNodePod(PodRuntime):
    """calico-node's pod: the image's start-up (``calico-node -startup``, a first tunnel address allocation), then
    its runit services (Felix and the rest ``podspec.node_services`` lists), each restarted when it exits.

    Every process gets the container's environment resolved from the live Pod and ConfigMaps, the in-cluster
    API address, and the pod's own ServiceAccount token mounted where client-go looks for it. The pod is Ready
    only while Felix answers 200 on its health endpoint's ``/readiness``.
    """

    def __init__(self, pod: Obj, ctx: Context, binary: str, release: str) -> None:
        super().__init__(pod, ctx)
        self.binary = binary
        self.logs = Path(ctx.cfg.workdir) / "calico" / f"{pod['metadata']['name']}-{pod['metadata']['uid'][:8]}"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.state = CalicoState(self.key, pod["metadata"]["uid"], release, binary, str(self.logs))
        self.services: list[Service] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._container, name=f"calico-node {self.key}", daemon=True)
        self.env: dict[str, str] = {}

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=STOP_GRACE * 3)
        for service in self.services:
            if service.proc is not None:
                stop_process(service.proc)
        self.ctx.events("calico-stopped", pod=self.key, release=self.state.release)
        self._save()

    def status(self) -> dict[str, Any] | None:
        message = self.state.error or None
        return _running_status(self.pod, self.ctx.cfg.node_ip, self.ctx.cfg.node_ip, self.state.ready,
                               self.state.restarts, message)

    def _container(self) -> None:
        """The container's life: start up, supervise, and start over (a restart) when start-up fails."""
        while not self._stopping.is_set():
            try:
                self._start_up()
                self._supervise()
            except Exception as exc:  # any failure is this container's: reported on the pod, then restarted
                self.state.error = " ".join(str(exc).split())[:500]
                self.state.restarts += 1
                self.ctx.events("calico-startup-failed", pod=self.key, error=self.state.error)
                self._save()
                self._stopping.wait(min(10.0, 1.0 * self.state.restarts))

    def _start_up(self) -> None:
        self.env = self._environment()
        write_serviceaccount(self.ctx, self.pod, self.ctx.cfg.ca_file)
        if podspec.has_init_container(self.pod, podspec.INSTALL_CNI):
            self._install_cni()
        self.ctx.events("calico-starting", pod=self.key, release=self.state.release)
        self._once("-startup", timeout=120)
        nodename = Path("/var/lib/calico/nodename")
        if nodename.is_file():
            self.env["NODENAME"] = nodename.read_text().strip()
        self._once("-allocate-tunnel-addrs", "-allocate-tunnel-addrs-run-once", timeout=60)
        plan = podspec.node_services(self.env, self.state.release)
        self.state.not_run = list(plan.not_run)
        self.services = [Service(flag, self.logs / f"{flag.lstrip('-')}.log") for flag in plan.long_running]
        for service in self.services:
            self._launch(service)
        self.state.error = ""
        self._save()

    def _environment(self, container: str | None = None) -> dict[str, str]:
        """A container's environment from the live Pod and the live ConfigMaps it names, plus the kubelet's."""
        core = self.ctx.api()
        names = podspec.config_maps_referenced(self.pod, container)
        config_maps = {name: data for name in names if (data := read_config_map(core, "kube-system", name)) is not None}
        env = podspec.resolve_env(self.pod, config_maps, container)
        return {"PATH": PATH, "HOSTNAME": self.ctx.cfg.node,
                **podspec.in_cluster_env("127.0.0.1", self.ctx.cfg.api_listen_port), **env}

    def _install_cni(self) -> None:
        """What calico/cni's install-cni does, from its live env: the CNI plugin and calico-ipam in the node's CNI bin
        directory, a kubeconfig with a calico-cni-plugin token, and ``cni_network_config`` filled in as CNI_CONF_NAME."""
        binary = self.ctx.cfg.calico_cni.get(self.state.release)
        if binary is None:
            raise StartupError(f"no local build of Calico's CNI plugin {self.state.release} for install-cni")
        env = self._environment(podspec.INSTALL_CNI)
        kubeconfig = CNI_NET_DIR / "calico-kubeconfig"
        server = f"https://{env['KUBERNETES_SERVICE_HOST']}:{env['KUBERNETES_SERVICE_PORT']}"
        token = request_token(self.ctx, self.pod, "calico-cni-plugin", bound=False)  # as install-cni asks for it
        kubeconfig.write_text(podspec.kubeconfig_text(server, Path(self.ctx.cfg.ca_file).read_bytes(), token))
        conflist = podspec.cni_conflist(env.get("CNI_NETWORK_CONFIG", ""), env.get("KUBERNETES_NODE_NAME", ""),
                                        env.get("CNI_MTU", "1500"), str(kubeconfig))
        bin_dir = self.ctx.cfg.cni_bin
        bin_dir.mkdir(exist_ok=True)
        for name in ("calico", "calico-ipam"):
            (bin_dir / name).unlink(missing_ok=True)
            (bin_dir / name).symlink_to(binary)
        (CNI_NET_DIR / env.get("CNI_CONF_NAME", "10-calico.conflist")).write_text(json.dumps(conflist, indent=1))
        self.ctx.events("cni-installed", pod=self.key, release=self.state.release)

    def _once(self, *flags: str, timeout: float) -> None:
        log = self.logs / f"{flags[0].lstrip('-')}.log"
        with log.open("ab") as out:
            proc = subprocess.run([self.binary, *flags], env=self.env, stdout=out, stderr=out, timeout=timeout)
        if proc.returncode != 0:
            tail = " | ".join(log.read_text(errors="replace").splitlines()[-3:])
            raise StartupError(f"calico-node {' '.join(flags)} exited {proc.returncode}: {tail}")

    def _launch(self, service: Service) -> None:
        env = podspec.felix_service_env(self.env) if service.flag == "-felix" else self.env
        with service.log.open("ab") as out:
            service.proc = subprocess.Popen([self.binary, service.flag], env=env, stdout=out, stderr=out)
        service.starts += 1
        service.started_at, service.next_start = time.monotonic(), 0.0
        if service.flag == "-felix":
            self.state.felix_env = dict(env)
            self.state.felix_pid = service.proc.pid
            self.ctx.events("felix-started", pod=self.key, release=self.state.release, pid=service.proc.pid)

    def _supervise(self) -> None:
        """runit's job: start a service again after it exits; meanwhile follow Felix's readiness."""
        host, port = podspec.health_endpoint(self.env)
        url = f"http://{'127.0.0.1' if host == 'localhost' else host}:{port}/readiness"
        while not self._stopping.wait(0.2):
            now = time.monotonic()
            for service in self.services:
                if service.exited(now):
                    assert service.proc is not None
                    self.ctx.events("service-exited", pod=self.key, service=service.flag, code=service.proc.returncode,
                                    restart_in=f"{service.next_start - now:.0f}s")
                elif service.next_start and now >= service.next_start:
                    self._launch(service)
            self._set_ready(felix_ready(url))

    def _set_ready(self, ready: bool) -> None:
        if ready != self.state.ready:
            self.state.ready = ready
            self.ctx.events("felix-ready" if ready else "felix-not-ready", pod=self.key, release=self.state.release)
            self._save()

    def _save(self) -> None:
        path = Path(self.ctx.cfg.workdir) / "calico.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self.state), indent=1))
        tmp.replace(path)


def felix_ready(url: str) -> bool:
    """Whether Felix's health endpoint answers 200 on ``/readiness`` (what ``calico-node -felix-ready`` checks)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def read_config_map(core: Any, namespace: str, name: str) -> dict[str, str] | None:
    """A ConfigMap's data as the API server has it now, None when it does not exist."""
    from kubernetes.client.exceptions import ApiException

    try:
        response = core.read_namespaced_config_map(name, namespace, _preload_content=False)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    data: dict[str, str] = json.loads(response.data).get("data") or {}
    return data


def request_token(ctx: Context, pod: Obj, account: str, *, bound: bool = True) -> str:
    """A token of ServiceAccount ``account`` in the pod's namespace; ``bound`` (the pod's own account only): bound to
    the pod, so invalid once it is gone, as a kubelet's projected token is."""
    from kubernetes import client

    meta = pod["metadata"]
    ref = client.V1BoundObjectReference(api_version="v1", kind="Pod", name=meta["name"], uid=meta["uid"])
    request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(
        audiences=[], expiration_seconds=86400, bound_object_ref=ref if bound else None))
    answer: Any = ctx.api().create_namespaced_service_account_token(account, meta["namespace"], request)
    return str(answer.status.token)


def write_serviceaccount(ctx: Context, pod: Obj, ca_file: str) -> None:
    """Mount the pod's ServiceAccount as a kubelet does: a token bound to this pod, the cluster CA, the namespace."""
    meta = pod["metadata"]
    token = request_token(ctx, pod, pod["spec"].get("serviceAccountName") or "default")
    (SERVICEACCOUNT_DIR / "token").write_text(token)
    (SERVICEACCOUNT_DIR / "ca.crt").write_bytes(Path(ca_file).read_bytes())
    (SERVICEACCOUNT_DIR / "namespace").write_text(meta["namespace"])


# ---------------------------------------------------------------------------------------------- the kubelet


class Kubelet:
    """Keeps every pod bound to this node running as its spec says, and its status saying so."""

    def __init__(self, cfg: NodeConfig, api_client: Any, events: Events) -> None:
        self.cfg = cfg
        self.events = events
        self._api_client = api_client
        self._pods: dict[str, Obj] = {}
        self._changed = threading.Event()
        self._lock = threading.Lock()
        self._runtimes: dict[str, PodRuntime] = {}
        self._reported: dict[str, str] = {}
        #: Pods whose start failed: (monotonic time of the next attempt, failures so far).
        self._retry: dict[str, tuple[float, int]] = {}
        addresses = ipaddress.ip_network(cfg.pod_cidr)
        self._free = [str(ip) for ip in list(addresses.hosts())[1:]]  # .1 is kept for the node side
        self._leases: dict[str, str] = {}
        self.network: PodNetwork = (
            CalicoCni(cfg.cni_bin, CNI_NET_DIR) if cfg.pod_network == "flannel-overlay"
            else OciStandIn(cfg.pod_interface_prefix, self.allocate_ip, self.release_ip))

    def api(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self._api_client)

    def allocate_ip(self, uid: str) -> str:
        with self._lock:
            if uid not in self._leases:
                if not self._free:
                    raise RuntimeError(f"no address left in {self.cfg.pod_cidr} on {self.cfg.node}")
                self._leases[uid] = self._free.pop(0)
            return self._leases[uid]

    def release_ip(self, uid: str) -> None:
        with self._lock:
            ip = self._leases.pop(uid, None)
            if ip:
                self._free.append(ip)

    def run(self, stop: threading.Event) -> None:
        threading.Thread(target=self._informer, args=(stop,), name="pod-informer", daemon=True).start()
        while not stop.is_set():
            self._changed.wait(0.25)
            self._changed.clear()
            with self._lock:
                pods = dict(self._pods)
            self.sync(pods)

    def shutdown(self) -> None:
        for runtime in self._runtimes.values():
            with contextlib.suppress(Exception):
                runtime.stop()

    def sync(self, pods: Mapping[str, Obj]) -> None:
        """Stop what should no longer run, finish deletions, start what is new, then report statuses."""
        for uid in [u for u in self._runtimes if u not in pods or pods[u]["metadata"].get("deletionTimestamp")]:
            self._runtimes.pop(uid).stop()
            self._reported.pop(uid, None)
        for uid, pod in pods.items():
            if pod["metadata"].get("deletionTimestamp"):
                self._finish_deletion(pod)
            elif uid not in self._runtimes:
                self._start(uid, pod)
        for uid, runtime in list(self._runtimes.items()):
            self._report(uid, runtime)

    def _start(self, uid: str, pod: Obj) -> None:
        """Start a pod; if that fails (no CNI yet, a CNI error) it is tried again later, as a kubelet retries a
        pod's sandbox, a second after the first failure and up to 10 s apart after more."""
        if time.monotonic() < self._retry.get(uid, (0.0, 0))[0]:
            return
        runtime = runtime_for(pod, self)
        self._runtimes[uid] = runtime
        try:
            runtime.start()
            self._retry.pop(uid, None)
        except Exception as exc:
            del self._runtimes[uid]
            failures = self._retry.get(uid, (0.0, 0))[1] + 1
            self._retry[uid] = (time.monotonic() + min(10.0, float(failures)), failures)
            if not isinstance(exc, NetworkNotReadyError):
                self.events("pod-start-failed", pod=runtime.key, error=exc, attempt=failures)

    def _report(self, uid: str, runtime: PodRuntime) -> None:
        status = runtime.status()
        if status is None:
            return
        digest = json.dumps({k: v for k, v in status.items() if k != "startTime"}, sort_keys=True, default=str)
        digest = _without_times(digest)
        if self._reported.get(uid) == digest:
            return
        meta = runtime.pod["metadata"]
        with contextlib.suppress(Exception):
            self.api().patch_namespaced_pod_status(meta["name"], meta["namespace"], {"status": status},
                                                   _preload_content=False)
            self._reported[uid] = digest

    def _finish_deletion(self, pod: Obj) -> None:
        """No kubelet confirms a graceful deletion here but this one: once its processes are stopped, finish it."""
        from kubernetes import client

        meta = pod["metadata"]
        options = client.V1DeleteOptions(grace_period_seconds=0, preconditions=client.V1Preconditions(uid=meta["uid"]))
        with contextlib.suppress(Exception):
            self.api().delete_namespaced_pod(meta["name"], meta["namespace"], body=options, _preload_content=False)

    def _informer(self, stop: threading.Event) -> None:
        """List, then watch, the pods bound to this node; every change wakes the sync loop."""
        while not stop.is_set():
            try:
                version = self._list()
                for kind, pod in self._watch(version):
                    with self._lock:
                        if kind == "DELETED":
                            self._pods.pop(pod["metadata"]["uid"], None)
                        else:
                            self._pods[pod["metadata"]["uid"]] = pod
                    self._changed.set()
            except Exception as exc:
                self.events("informer-error", error=type(exc).__name__)
                stop.wait(1.0)

    def _list(self) -> str:
        response = self.api().list_pod_for_all_namespaces(field_selector=f"spec.nodeName={self.cfg.node}",
                                                          _preload_content=False)
        listing = json.loads(response.data)
        with self._lock:
            self._pods = {p["metadata"]["uid"]: p for p in listing["items"]}
        self._changed.set()
        return str(listing["metadata"]["resourceVersion"])

    def _watch(self, version: str) -> Iterator[tuple[str, Obj]]:
        from kubernetes.watch.watch import iter_resp_lines

        response = self.api().list_pod_for_all_namespaces(
            field_selector=f"spec.nodeName={self.cfg.node}", watch=True, resource_version=version, timeout_seconds=60,
            allow_watch_bookmarks=False, _preload_content=False)
        try:
            for line in iter_resp_lines(response):  # type: ignore[no-untyped-call]
                event = json.loads(line)
                if event["type"] == "ERROR":
                    return
                yield event["type"], event["object"]
        finally:
            response.release_conn()


def _without_times(digest: str) -> str:
    """A status without its timestamps, so an unchanged status is not written again."""
    import re

    return re.sub(r'"(lastTransitionTime|startedAt)": "[^"]*"', "", digest)


def runtime_for(pod: Obj, ctx: Kubelet) -> PodRuntime:
    """What runs for ``pod`` on this node."""
    image = str(podspec.container(pod).get("image", ""))
    if podspec.image_registry(image) == "never-ready.invalid":
        return ImageUnavailable(pod, ctx, f"the image {image} cannot be pulled (its registry never answers)")
    if podspec.is_calico_node(pod):
        return _calico_node(pod, ctx, image)
    if pod["spec"].get("hostNetwork"):
        return HostNetworkPod(pod, ctx)
    try:
        target = agnhost_connect(pod)
    except (podspec.PodSpecError, ValueError) as exc:
        return BadContainerConfig(pod, ctx, str(exc))
    if target is not None:
        return ProbeClientPod(pod, ctx, target)
    return WorkloadPod(pod, ctx)


def _calico_node(pod: Obj, ctx: Kubelet, image: str) -> PodRuntime:
    release = podspec.image_release(image)
    binary = ctx.cfg.calico_node.get(release or "")
    if binary is None:
        built = ", ".join(sorted(ctx.cfg.calico_node)) or "none"
        return ImageUnavailable(pod, ctx, f"no local build of calico/node {release or image} on {ctx.cfg.node} "
                                          f"(built here: {built}; see calico_component/local/tools.py)")
    return CalicoNodePod(pod, ctx, binary, release or "")


# ---------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    cfg = NodeConfig.load(Path(args[0]))
    workdir = Path(cfg.workdir)
    events = Events(workdir / "events.log")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda *_: stop.set())
    kubelet: Kubelet | None = None
    try:
        kubelet = _boot(cfg, workdir, events)
        (workdir / "agent.ready").write_text(now())
        events("node-ready", node=cfg.node)
        kubelet.run(stop)
        return 0
    except Exception:
        (workdir / "agent.error").write_text(traceback.format_exc())
        events("agent-failed")
        return 1
    finally:
        if kubelet is not None:
            kubelet.shutdown()
        events("agent-stopped")


def _boot(cfg: NodeConfig, workdir: Path, events: Events) -> Kubelet:
    """The node's mounts, network, API forwarder and pre-existing rules, then a kubelet connected through it."""
    import yaml
    from kubernetes import config as k8s_config

    prepare_mounts(workdir)
    prepare_network(cfg)
    ApiForwarder(("127.0.0.1", cfg.api_listen_port), cfg.api_upstream, cfg.host_netns_fd).start()
    add_node_rules()
    kubeconfig = yaml.safe_load(Path(cfg.kubeconfig).read_text())
    api_client = k8s_config.new_client_from_config_dict(kubeconfig)  # type: ignore[no-untyped-call]
    return Kubelet(cfg, api_client, events)


if __name__ == "__main__":
    sys.exit(main())
