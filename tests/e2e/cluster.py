"""Read and seed the live cluster in e2e tests through the official Kubernetes client."""

from __future__ import annotations

import contextlib
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from calico_component.local.nodes import calico_node_pods, exists, fake_flannel_daemonset, flannel, flannel_present, pod_ready
from tests.conftest import upstream_image

__all__ = [
    "THREE_NODES",
    "Key",
    "assert_calico_ready",
    "assert_installed",
    "calico_node",
    "calico_node_pods",
    "crd_names",
    "delete_crds",
    "env_of",
    "exists",
    "fingerprints",
    "flannel",
    "flannel_daemonset",
    "flannel_present",
    "key_of",
    "live_uids",
    "pod_ready",
    "workload_images",
]

flannel_daemonset = fake_flannel_daemonset


def calico_node(k8s: Any) -> Any:
    return client.AppsV1Api(k8s).read_namespaced_daemon_set("calico-node", "kube-system")


def env_of(ds: Any) -> dict[str, str | None]:
    return {e.name: e.value for e in ds.spec.template.spec.containers[0].env}


Key = tuple[str, str, str]  # (kind, namespace, name)


def key_of(obj: dict[str, Any]) -> Key:
    meta = obj["metadata"]
    return (obj["kind"], meta.get("namespace", ""), meta["name"])


def live_uids(k8s: Any, objects: list[dict[str, Any]]) -> dict[Key, str | None]:
    """The UID of each object as the API server has it now (None: absent), through the dynamic client."""
    from kubernetes.dynamic import DynamicClient
    from kubernetes.dynamic.exceptions import NotFoundError

    dyn = DynamicClient(k8s)  # type: ignore[no-untyped-call]
    found: dict[Key, str | None] = {}
    for obj in objects:
        kind, ns, name = key_of(obj)
        api = dyn.resources.get(api_version=obj["apiVersion"], kind=kind)
        try:
            live = api.get(name=name, namespace=ns or None)
            found[(kind, ns, name)] = str(live.metadata.uid)
        except NotFoundError:
            found[(kind, ns, name)] = None
    return found


def crd_names(k8s: Any) -> set[str]:
    crds: Any = client.ApiextensionsV1Api(k8s).list_custom_resource_definition()
    return {c.metadata.name for c in crds.items}


def workload_images(k8s: Any) -> dict[str, list[str]]:
    """Container images of calico-node and of every Deployment in kube-system, by object name."""
    apps = client.AppsV1Api(k8s)
    images = {"calico-node": [c.image for c in calico_node(k8s).spec.template.spec.containers]}
    deployments: Any = apps.list_namespaced_deployment("kube-system")
    for d in deployments.items:
        images[d.metadata.name] = [c.image for c in d.spec.template.spec.containers]
    return images


def delete_crds(k8s: Any, timeout: float = 180) -> None:
    """Delete every CRD (the component retains them on destroy) and wait until they are gone.

    kube-apiserver's CRD finalizer fails while a just-updated CRD's storage reinitializes and then
    retries with an exponential backoff that can exceed a minute; touching a terminating CRD queues
    it again at once, so the wait nudges whatever is left every few seconds.
    """
    import time

    api = client.ApiextensionsV1Api(k8s)
    for name in crd_names(k8s):
        api.delete_custom_resource_definition(name)
    deadline = time.monotonic() + timeout
    nudged = time.monotonic()
    while crd_names(k8s) and time.monotonic() < deadline:
        time.sleep(0.2)
        if time.monotonic() - nudged > 5:
            for name in crd_names(k8s):
                with contextlib.suppress(ApiException):
                    api.patch_custom_resource_definition(
                        name, {"metadata": {"annotations": {"calico-oke.e2e/nudge": str(time.monotonic())}}})
            nudged = time.monotonic()
    assert not crd_names(k8s), f"CRDs still present: {sorted(crd_names(k8s))}"


#: The nodes the ``three_nodes`` fixture adds.
THREE_NODES = ["worker-0", "worker-1", "worker-2"]


def assert_calico_ready(k8s: Any, version: str, nodes: list[str]) -> None:
    """calico-node ready on exactly ``nodes``, running ``version``; every Deployment in kube-system available with it."""
    pods = calico_node_pods(k8s)
    assert sorted(p.spec.node_name for p in pods) == sorted(nodes)
    for pod in pods:
        assert pod_ready(pod), pod.metadata.name
        assert [s.image for s in pod.status.container_statuses] == [upstream_image(version)]
    deployments: Any = client.AppsV1Api(k8s).list_namespaced_deployment("kube-system")
    for d in deployments.items:
        # Every desired replica runs the new template and is available (a rolled-out old pod may still be terminating
        # beside it for a moment after `up` returns, counted as available too).
        status = d.status
        assert status.updated_replicas == d.spec.replicas and (status.available_replicas or 0) >= d.spec.replicas, \
            f"{d.metadata.name}: {status}"
        assert all(c.image.endswith(f":v{version}") for c in d.spec.template.spec.containers), d.metadata.name


def assert_installed(k8s: Any, version: str) -> None:
    """Calico ``version`` ready on the ``three_nodes`` fixture's nodes."""
    assert_calico_ready(k8s, version, THREE_NODES)


Fingerprint = tuple[int, str, tuple[str, ...]]


def fingerprints(k8s: Any, objects: list[dict[str, Any]]) -> dict[Key, Fingerprint | None]:
    """What any write by a stack changes on each object: its generation, annotations and field managers (controllers'
    status writes change none of them)."""
    from kubernetes.dynamic import DynamicClient
    from kubernetes.dynamic.exceptions import NotFoundError

    dyn = DynamicClient(k8s)  # type: ignore[no-untyped-call]
    found: dict[Key, Fingerprint | None] = {}
    for obj in objects:
        kind, ns, name = key_of(obj)
        try:
            meta = dyn.resources.get(api_version=obj["apiVersion"], kind=kind).get(name=name, namespace=ns or None).metadata
        except NotFoundError:
            found[(kind, ns, name)] = None
            continue
        managers = tuple(sorted(f"{m.manager}/{m.subresource or ''}" for m in meta.managedFields or []))
        found[(kind, ns, name)] = (int(meta.generation or 0), str(sorted((meta.annotations or {}).items())), managers)
    return found
