"""A local dataplane node's host: its configuration, mounts, interfaces, pre-Calico rules, event log and processes."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

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



def stop_process(proc: subprocess.Popen[Any], grace: float = STOP_GRACE) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; reaped either way."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

