"""How pods on a local dataplane node get their network: the OCI VCN-native stand-in, or Calico's own CNI plugin."""

from __future__ import annotations

import contextlib
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from . import podspec
from .node_host import PATH, run
from .podspec import Obj


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

