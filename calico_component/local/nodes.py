"""Fake worker nodes for the e2e control plane: kwok's stage configuration and Node objects it manages."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

#: Nodes carrying this annotation are the ones kwok plays the kubelet for.
KWOK_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
#: Pods whose first container's image comes from this registry never become ready: a rollout that cannot finish
#: (what an unpullable image does on a real node).
NEVER_READY_REGISTRY = "never-ready.invalid"
#: Node InternalIPs (hostNetwork pods such as calico-node and calico-typha take their node's IP).
NODE_NETWORK = ipaddress.IPv4Network("10.100.0.0/16")
#: kwok's pod IP range for pods that are not on the host network.
POD_NETWORK = "10.200.0.0/16"


def _stage(name: str, kind: str, expressions: list[dict[str, Any]], nxt: dict[str, Any],
           delay_seconds: float = 0) -> dict[str, Any]:
    spec: dict[str, Any] = {"resourceRef": {"apiGroup": "v1", "kind": kind},
                            "selector": {"matchExpressions": expressions}, "next": nxt}
    if delay_seconds > 0:
        spec["delay"] = _delay(delay_seconds)
    return {"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Stage", "metadata": {"name": name}, "spec": spec}


#: A real node's calico-node is Ready after its image pull, start and first readiness probes: between the given time
#: and this much more (kwok draws uniformly between ``durationMilliseconds`` and ``jitterDurationMilliseconds``).
READY_JITTER = 0.5


def _delay(seconds: float) -> dict[str, int]:
    return {"durationMilliseconds": round(seconds * 1000),
            "jitterDurationMilliseconds": round(seconds * (1 + READY_JITTER) * 1000)}


_NOT_DELETED = {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"}

# A pod bound to a fake node: every container running and ready, IPs from the node (host network) or the pod range.
_RUNNING_POD = """\
{{ $now := Now }}
phase: Running
startTime: {{ $now | Quote }}
conditions:
{{ range list "PodScheduled" "Initialized" "ContainersReady" "Ready" }}
- type: {{ . }}
  status: "True"
  lastTransitionTime: {{ $now | Quote }}
{{ end }}
containerStatuses:
{{ range .spec.containers }}
- name: {{ .name | Quote }}
  image: {{ .image | Quote }}
  imageID: {{ .image | Quote }}
  ready: true
  started: true
  restartCount: 0
  state:
    running:
      startedAt: {{ $now | Quote }}
{{ end }}
initContainerStatuses:
{{ range .spec.initContainers }}
- name: {{ .name | Quote }}
  image: {{ .image | Quote }}
  imageID: {{ .image | Quote }}
  ready: true
  restartCount: 0
  state:
    terminated:
      exitCode: 0
      reason: Completed
      startedAt: {{ $now | Quote }}
      finishedAt: {{ $now | Quote }}
{{ end }}
{{ with NodeIPsWith .spec.nodeName }}
hostIP: {{ index . 0 | Quote }}
hostIPs:
{{ range . }}
- ip: {{ . | Quote }}
{{ end }}
{{ end }}
{{ $meta := .metadata }}
{{ with PodIPsWith .spec.nodeName ( or .spec.hostNetwork false ) ( or $meta.uid "" ) ( or $meta.name "" )
  ( or $meta.namespace "" ) }}
podIP: {{ index . 0 | Quote }}
podIPs:
{{ range . }}
- ip: {{ . | Quote }}
{{ end }}
{{ end }}
"""

# A pod whose image cannot be pulled: it stays Pending and never ready.
_IMAGE_PULL_BACKOFF = """\
{{ $now := Now }}
phase: Pending
conditions:
- type: PodScheduled
  status: "True"
  lastTransitionTime: {{ $now | Quote }}
- type: Ready
  status: "False"
  reason: ContainersNotReady
  lastTransitionTime: {{ $now | Quote }}
containerStatuses:
{{ range .spec.containers }}
- name: {{ .name | Quote }}
  image: {{ .image | Quote }}
  imageID: ""
  ready: false
  restartCount: 0
  state:
    waiting:
      reason: ImagePullBackOff
{{ end }}
"""


# A node that is not Ready yet becomes Ready (tests create nodes Ready; kwok runs no node controller without a stage).
_READY_NODE = """\
{{ $now := Now }}
conditions:
- type: Ready
  status: "True"
  reason: KubeletReady
  message: kwok plays the kubelet of this node
  lastHeartbeatTime: {{ $now | Quote }}
  lastTransitionTime: {{ $now | Quote }}
"""


#: The label of Calico's node agent pods, which ``calico_node_ready_seconds`` slows down.
CALICO_NODE_LABEL = ("k8s-app", "calico-node")


def kwok_stages(calico_node_ready_seconds: float = 0) -> str:
    """kwok's configuration: Ready nodes, Running-and-ready pods (unless their image is from NEVER_READY_REGISTRY),
    and deletions finished as a kubelet would. With ``calico_node_ready_seconds``, a calico-node pod becomes Running
    and Ready that long (plus up to READY_JITTER of it) after it was bound, as on a real node; other pods at once."""
    registry = ".spec.containers[0].image | split(\"/\") | .[0]"
    unscheduled = {"key": ".status.phase", "operator": "In", "values": ["Pending"]}
    not_ready = {"key": '.status.conditions.[] | select( .type == "Ready" ) | .status', "operator": "NotIn",
                 "values": ["True"]}
    startable: list[dict[str, Any]] = [_NOT_DELETED, unscheduled, not_ready,
                 {"key": registry, "operator": "NotIn", "values": [NEVER_READY_REGISTRY]}]
    label = f'.metadata.labels["{CALICO_NODE_LABEL[0]}"]'
    stages = [
        _stage("node-ready", "Node", [_NOT_DELETED, not_ready], {"statusTemplate": _READY_NODE}),
        _stage("pod-running", "Pod", [*startable, {"key": label, "operator": "NotIn", "values": [CALICO_NODE_LABEL[1]]}],
               {"statusTemplate": _RUNNING_POD}),
        _stage("calico-node-running", "Pod", [*startable, {"key": label, "operator": "In",
                                                            "values": [CALICO_NODE_LABEL[1]]}],
               {"statusTemplate": _RUNNING_POD}, delay_seconds=calico_node_ready_seconds),
        _stage("pod-image-pull-backoff", "Pod", [
            _NOT_DELETED, unscheduled,
            {"key": '.status.containerStatuses.[0].state.waiting.reason', "operator": "NotIn",
             "values": ["ImagePullBackOff"]},
            {"key": registry, "operator": "In", "values": [NEVER_READY_REGISTRY]},
        ], {"statusTemplate": _IMAGE_PULL_BACKOFF}),
        # No kubelet confirms a graceful deletion: finish it, or rollouts would wait on Terminating pods forever.
        _stage("pod-delete", "Pod", [{"key": ".metadata.deletionTimestamp", "operator": "Exists"}],
               {"delete": True, "finalizers": {"empty": True}}),
    ]
    return yaml.safe_dump_all(stages, sort_keys=False)


def node_ip(index: int) -> str:
    return str(NODE_NETWORK.network_address + 1 + index)


def add_nodes(k8s: Any, count: int, prefix: str = "worker", start: int = 0) -> list[str]:
    """Create ``count`` Ready fake worker nodes (Linux, amd64) that kwok plays the kubelet for."""
    core = client.CoreV1Api(k8s)
    return [register_node(core, f"{prefix}-{i}", node_ip(i), kwok=True) for i in range(start, start + count)]


def register_node(core: Any, name: str, ip: str, *, kwok: bool, pods: int = 110) -> str:
    """Create one Ready Linux node with InternalIP ``ip``; with ``kwok`` it carries the annotation kwok manages."""
    labels = {"kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": name}
    annotations = {KWOK_ANNOTATION[0]: KWOK_ANNOTATION[1]} if kwok else {}
    core.create_node(client.V1Node(metadata=client.V1ObjectMeta(name=name, labels=labels, annotations=annotations)))
    # The TaintNodesByCondition admission plugin taints new nodes not-ready; the node lifecycle controller (not
    # run here: no kubelet heartbeats) would lift it once Ready, so lift it the same way.
    core.patch_node(name, [{"op": "replace", "path": "/spec/taints", "value": []}])
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    capacity = {"cpu": "16", "memory": "64Gi", "pods": str(pods)}
    core.patch_node_status(name, {"status": {
        "capacity": capacity, "allocatable": capacity,
        "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                        "lastHeartbeatTime": now, "lastTransitionTime": now}],
        "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux", "kubeletVersion": "v1.33.13",
                     "osImage": "Oracle Linux Server 8.10",
                     "containerRuntimeVersion": "fake://kwok" if kwok else "local://calico-oke",
                     "kernelVersion": "", "kubeProxyVersion": "", "bootID": "", "machineID": "", "systemUUID": ""},
    }})
    return name


def cordon(k8s: Any, names: list[str]) -> None:
    """Mark nodes unschedulable: only DaemonSet pods (which tolerate it) and pods that tolerate every taint land there."""
    core = client.CoreV1Api(k8s)
    for name in names:
        core.patch_node(name, {"spec": {"unschedulable": True}})


def delete_nodes(k8s: Any) -> None:
    """Remove every fake node and the pods bound to them."""
    core = client.CoreV1Api(k8s)
    node_list: Any = core.list_node()
    for node in node_list.items:
        core.delete_node(node.metadata.name)
    pod_list: Any = core.list_pod_for_all_namespaces()
    for pod in pod_list.items:
        if pod.spec.node_name:
            _delete_pod_now(core, pod.metadata.name, pod.metadata.namespace)


def _delete_pod_now(core: Any, name: str, namespace: str) -> None:
    """Delete a pod without grace; one already gone (its controller or the pod garbage collector was first) is fine."""
    try:
        core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
    except ApiException as exc:
        if exc.status != 404:
            raise


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


def exists(read: Callable[[], object]) -> bool:
    """Whether ``read()`` finds the object (False on 404)."""
    from kubernetes.client.exceptions import ApiException

    try:
        read()
        return True
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise


def fake_flannel_daemonset() -> client.V1DaemonSet:
    """A stand-in for OKE's kube-system/kube-flannel-ds: same name and namespace, on the host network as flannel is, a
    container that kwok (or a dataplane node) runs."""
    labels = {"app": "flannel"}
    return client.V1DaemonSet(
        metadata=client.V1ObjectMeta(name="kube-flannel-ds", namespace="kube-system", labels=labels),
        spec=client.V1DaemonSetSpec(
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(host_network=True,
                                      containers=[client.V1Container(name="kube-flannel", image="flannel:test")]),
            ),
        ),
    )


def run_fake_flannel(k8s: Any, node_count: int, timeout: float = 60) -> None:
    """Create the fake kube-flannel-ds and wait until it runs on ``node_count`` nodes, as on a flannel-overlay cluster."""
    client.AppsV1Api(k8s).create_namespaced_daemon_set("kube-system", fake_flannel_daemonset())
    wait_for(lambda: (flannel(k8s).status.number_ready or 0) == node_count, timeout,
             f"the fake kube-flannel-ds running on {node_count} nodes")


def flannel(k8s: Any) -> Any:
    return client.AppsV1Api(k8s).read_namespaced_daemon_set("kube-flannel-ds", "kube-system")


def flannel_present(k8s: Any) -> bool:
    return exists(lambda: flannel(k8s))


def calico_node_pods(k8s: Any) -> list[Any]:
    """The calico-node pods, one per node once the DaemonSet has rolled out."""
    pods: Any = client.CoreV1Api(k8s).list_namespaced_pod("kube-system", label_selector="k8s-app=calico-node")
    return list(pods.items)


def pod_ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
