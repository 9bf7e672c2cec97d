"""The kubelet of a local dataplane node: keeps every pod bound to the node running as its spec says, status and all."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

from . import podspec
from .calico_node_pod import CalicoNodePod
from .node_host import CNI_NET_DIR, Events, NodeConfig
from .pod_network import CalicoCni, NetworkNotReadyError, OciStandIn, PodNetwork
from .pods import (
    BadContainerConfig,
    HostNetworkPod,
    ImageUnavailable,
    PodRuntime,
    ProbeClientPod,
    WorkloadPod,
    agnhost_connect,
)
from .podspec import Obj


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

