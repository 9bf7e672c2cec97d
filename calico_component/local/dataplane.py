"""A local node with a real dataplane: Calico's own Felix policing pods in network namespaces this code creates.

``DataplaneNode`` registers a Node and starts its agent (``calico_component.local.agent``) as PID 1
of new pid, network and mount namespaces (``unshare``). The agent is the node's kubelet: calico-node's
pod runs Calico built from source, with the environment the live Pod and ConfigMaps give it; every
other pod gets a network namespace, a veth and an address. kwok keeps playing the other nodes.

Nothing touches the machine's own network namespace: the node's only link to the API server is a
forwarder whose outgoing sockets are dialled from the machine's namespace (``apiproxy``). Everything
stops when the ``with`` block ends, and by itself when the Python process that started it dies for
any reason (parent-death signal to ``unshare``, which then kills the namespace's PID 1, and with it
every process, interface and rule inside).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml
from kubernetes import client

from . import probe
from .controlplane import ControlPlane, _stop_groups, die_with_parent
from .node_host import NodeConfig
from .nodes import NODE_NETWORK, register_node
from .pod_network import netns_name

#: Debian packages that provide what a dataplane node runs, by command.
HOST_COMMANDS = {
    "unshare": "util-linux", "nsenter": "util-linux", "mount": "mount", "ip": "iproute2",
    "iptables-nft": "iptables", "iptables-nft-restore": "iptables", "iptables-legacy-save": "iptables",
    "ipset": "ipset", "nft": "nftables",
}
#: Node addresses of dataplane nodes: 10.100.200.<1 + index> (kwok's nodes count up from 10.100.0.1).
DATAPLANE_NODE_BASE = int(NODE_NETWORK.network_address) + 200 * 256
#: Pod addresses of dataplane nodes (kwok gives its pods 10.200.0.0/16), a /22 each: room for DataplaneNode.max_pods.
DATAPLANE_POD_NETWORK = ipaddress.IPv4Network("10.201.0.0/16")
POD_PREFIX_LENGTH = 22
#: The API server's address inside every dataplane node (its forwarder on the node's loopback).
NODE_API_PORT = 6443


class DataplaneError(RuntimeError):
    """A dataplane node cannot run here, or did not start; the message says what is missing or where its logs are."""


def missing_host_requirements() -> list[str]:
    """What this machine lacks to run a dataplane node, each with how to get it (empty: nothing)."""
    missing = [] if os.geteuid() == 0 else ["root (network namespaces and netfilter rules need it)"]
    absent: dict[str, list[str]] = {}
    for command, package in HOST_COMMANDS.items():
        if shutil.which(command) is None:
            absent.setdefault(package, []).append(command)
    missing += [f"{', '.join(cmds)} (apt-get install -y {package})" for package, cmds in sorted(absent.items())]
    return missing


def require_host() -> None:
    missing = missing_host_requirements()
    if missing:
        raise DataplaneError("a node with a real dataplane needs " + "; ".join(missing))


def node_address(index: int) -> str:
    return str(ipaddress.IPv4Address(DATAPLANE_NODE_BASE + 1 + index))


def pod_network(index: int) -> str:
    """Node ``index``'s pod block: 10.201.<4 * index>.0/22."""
    return str(list(DATAPLANE_POD_NETWORK.subnets(new_prefix=POD_PREFIX_LENGTH))[index])


@dataclass
class DataplaneNode:
    """``with DataplaneNode(cp, {"v3.32.0": path_to_calico_node}) as node:`` -- see the module docstring."""

    control_plane: ControlPlane
    #: Calico release (``v3.32.0``) -> its calico-node binary (``tools.calico_tools``).
    calico_node: Mapping[str, Path]
    #: Release -> Calico's CNI plugin (``calico-cni-<release>``): what install-cni puts on a flannel-overlay node.
    calico_cni: Mapping[str, Path] = field(default_factory=dict)
    #: ``vcn-native`` or ``flannel-overlay``: how the node's pods get their network (``node_host.NodeConfig``).
    pod_network: str = "vcn-native"
    name: str = "dataplane-0"
    index: int = 0
    #: Pods the node accepts (its capacity): its pod block (pod_network) has an address for each.
    max_pods: int = 1000
    startup_timeout: float = 60.0
    #: Where the node's directory (logs, state) is created (default: the control plane's directory).
    parent_dir: Path | None = None
    #: Keep running after the starting process exits (``demo --keep``); see ``detach``.
    outlive_parent: bool = False
    workdir: Path = field(init=False)
    agent_pid: int = field(init=False, default=0)
    _proc: subprocess.Popen[bytes] | None = field(init=False, default=None)

    @property
    def ip(self) -> str:
        return node_address(self.index)

    def __enter__(self) -> DataplaneNode:
        require_host()
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.name}-", dir=self.parent_dir or self.control_plane.workdir))
        try:
            self._register()
            self._start_agent()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        if self._proc is not None:
            self._stop_agent(self._proc)
            self._proc = None

    # -- start and stop

    def _register(self) -> None:
        k8s = api_client(self.control_plane)
        register_node(client.CoreV1Api(k8s), self.name, self.ip, kwok=False, pods=self.max_pods)

    def _config(self, host_netns: int) -> Path:
        """The agent's configuration (``node.json``) and its kubeconfig, aimed at the node's API forwarder."""
        kubeconfig = yaml.safe_load(self.control_plane.kubeconfig)
        kubeconfig["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{NODE_API_PORT}"
        (self.workdir / "kubeconfig").write_text(yaml.safe_dump(kubeconfig))
        upstream = self.control_plane.server.removeprefix("https://").rsplit(":", 1)
        cfg = NodeConfig(
            node=self.name, node_ip=self.ip, pod_cidr=pod_network(self.index),
            api_upstream=(upstream[0], int(upstream[1])), api_listen_port=NODE_API_PORT,
            kubeconfig=str(self.workdir / "kubeconfig"),
            ca_file=str(self.control_plane.workdir / "certs" / "apiserver.crt"), workdir=str(self.workdir),
            host_netns_fd=host_netns, python=sys.executable, probe_script=probe.__file__,
            calico_node={release: str(path) for release, path in self.calico_node.items()},
            calico_cni={release: str(path) for release, path in self.calico_cni.items()}, pod_network=self.pod_network,
        )
        path = self.workdir / "node.json"
        cfg.save(path)
        return path

    def _start_agent(self) -> None:
        host_netns = os.open("/proc/self/ns/net", os.O_RDONLY)
        try:
            config = self._config(host_netns)
            with (self.workdir / "agent.log").open("ab") as log:
                self._proc = subprocess.Popen(
                    [*die_with_parent(self.outlive_parent), "unshare", "--pid", "--net", "--mount", "--propagation",
                     "private", "--fork", "--mount-proc", "--kill-child", sys.executable, "-m",
                     "calico_component.local.agent", str(config)],
                    stdout=log, stderr=subprocess.STDOUT, pass_fds=(host_netns,), start_new_session=True)
        finally:
            os.close(host_netns)
        self._wait_ready(self._proc)

    def _wait_ready(self, proc: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if (self.workdir / "agent.ready").exists():
                self.agent_pid = _child_of(proc.pid)
                return
            if (self.workdir / "agent.error").exists() or proc.poll() is not None:
                break
            time.sleep(0.05)
        detail = self._read("agent.error") or self._read("agent.log")[-2000:] or "no output"
        raise DataplaneError(f"the dataplane node {self.name} did not start (logs in {self.workdir}):\n{detail}")

    def _stop_agent(self, proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
        """SIGTERM to the node's process group (unshare, the agent, Calico), SIGKILL after ``grace``; once the
        namespaces' PID 1 is gone every process, interface and rule of the node is gone with it."""
        _stop_groups([proc.pid], grace)
        proc.wait()

    def detach(self) -> int:
        """Leave the node running past ``with`` (needs ``outlive_parent``); return its process group to stop it by."""
        if not self.outlive_parent or self._proc is None:
            raise DataplaneError("only a running DataplaneNode started with outlive_parent=True can be left running")
        pid = self._proc.pid
        self._proc = None
        return pid

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _read(self, name: str) -> str:
        path = self.workdir / name
        return path.read_text(errors="replace") if path.exists() else ""

    # -- inside the node

    def _enter(self, *argv: str) -> list[str]:
        if not self.alive:
            raise DataplaneError(f"the dataplane node {self.name} is not running (logs in {self.workdir})")
        return ["nsenter", "--target", str(self.agent_pid), "--mount", "--net", "--pid", "--", *argv]

    def node_exec(self, *argv: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a command in the node's namespaces (its network: ``iptables-nft-save``, ``nft list ruleset``)."""
        proc = subprocess.run(self._enter(*argv), capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise DataplaneError(f"{' '.join(argv)} on {self.name} exited {proc.returncode}: {proc.stderr.strip()}")
        return proc

    def pod_command(self, namespace: str, pod: str, *argv: str) -> list[str]:
        """The command line that runs ``argv`` inside a pod's network namespace on this node."""
        return self._enter("ip", "netns", "exec", netns_name(namespace, pod), *argv)

    def probe_command(self, namespace: str, pod: str, *args: str) -> list[str]:
        """``probe.py ARGS...`` run inside a pod (``connect``, ``watch``, ``serve``)."""
        return self.pod_command(namespace, pod, sys.executable, probe.__file__, *args)

    def connect(self, namespace: str, pod: str, ip: str, port: int, timeout: float = 1.0) -> str:
        """One TCP connection attempt from a pod: ``ok``, ``timeout`` (dropped), ``refused`` or ``error``."""
        proc = subprocess.run(self.probe_command(namespace, pod, "connect", ip, str(port), "--timeout", str(timeout)),
                              capture_output=True, text=True, timeout=timeout + 30)
        result = proc.stdout.strip() or f"error: {proc.stderr.strip()[-300:]}"
        return result

    def calico_state(self) -> dict[str, Any]:
        """What the node's Calico runs now (``calico_node_pod.CalicoState``: pod, release, Felix's env and pid, readiness)."""
        text = self._read("calico.json")
        state: dict[str, Any] = json.loads(text) if text else {}
        return state

    def events(self) -> list[tuple[float, str, dict[str, str]]]:
        """The node's event log: (unix time, what, details)."""
        found = []
        for line in self._read("events.log").splitlines():
            stamp, what, *rest = line.split(" ")
            found.append((float(stamp), what, dict(item.split("=", 1) for item in rest if "=" in item)))
        return found

    def log_tail(self, name: str, lines: int = 40) -> str:
        """The last lines of a log under the node's directory (``agent.log``, ``calico/<pod>/felix.log``)."""
        return "\n".join(self._read(name).splitlines()[-lines:])


def _child_of(pid: int, wait: float = 5.0) -> int:
    """The process ``unshare --fork`` started (the namespace's PID 1), by its pid in this namespace; 0 if none."""
    deadline = time.monotonic() + wait
    while True:
        with contextlib.suppress(OSError):
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            if children:
                return int(children[0])
        if time.monotonic() >= deadline:
            return 0
        time.sleep(0.02)


def api_client(cp: ControlPlane) -> Any:
    from kubernetes import config

    return config.new_client_from_config_dict(yaml.safe_load(cp.kubeconfig))  # type: ignore[no-untyped-call]
