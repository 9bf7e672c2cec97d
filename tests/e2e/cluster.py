"""Read and seed the live cluster in e2e tests through the official Kubernetes client."""

from __future__ import annotations

from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException


def calico_node(k8s: Any) -> Any:
    return client.AppsV1Api(k8s).read_namespaced_daemon_set("calico-node", "kube-system")


def env_of(ds: Any) -> dict[str, str | None]:
    return {e.name: e.value for e in ds.spec.template.spec.containers[0].env}


def exists(read: Any) -> bool:
    try:
        read()
        return True
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise


def flannel_daemonset() -> client.V1DaemonSet:
    labels = {"app": "flannel"}
    return client.V1DaemonSet(
        metadata=client.V1ObjectMeta(name="kube-flannel-ds", namespace="kube-system", labels=labels),
        spec=client.V1DaemonSetSpec(
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[client.V1Container(name="kube-flannel", image="flannel:test")]),
            ),
        ),
    )


def flannel_present(k8s: Any) -> bool:
    return exists(lambda: client.AppsV1Api(k8s).read_namespaced_daemon_set("kube-flannel-ds", "kube-system"))
