"""Removing flannel's DaemonSet (kube-system/kube-flannel-ds) from the cluster a kubeconfig names, never the current
kube context: deleted in the foreground and waited for; already absent is success. The provider's ``DaemonSetAbsent``
runs it; the OKE add-on's half of flannel removal is ``oke_addon``."""

from __future__ import annotations

import time
from collections.abc import Callable

from ..errors import CalicoError, FlannelRemovalError, OperationStoppedError
from .kube import REQUEST_TIMEOUT, Kube, session

DEFAULT_FLANNEL_ADDON_NAME = "Flannel"
FLANNEL_NAMESPACE = "kube-system"
FLANNEL_DAEMONSET = "kube-flannel-ds"


def _present(kube: Kube, namespace: str, name: str) -> bool:
    from kubernetes.client.exceptions import ApiException

    def read() -> bool:
        try:
            kube.apps.read_namespaced_daemon_set(name, namespace, _request_timeout=REQUEST_TIMEOUT)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    return kube.call(f"read DaemonSet {namespace}/{name}", read)


def _removal_error(namespace: str, name: str, exc: CalicoError) -> FlannelRemovalError:
    return FlannelRemovalError(f"cannot remove {namespace}/{name}: {exc}")


def present(kubeconfig: str, namespace: str, name: str) -> bool:
    """Whether the DaemonSet exists (``pulumi refresh``)."""
    try:
        with session(kubeconfig, f"read {namespace}/{name}") as kube:
            return _present(kube, namespace, name)
    except CalicoError as exc:
        raise _removal_error(namespace, name, exc) from None


def nodes_running(kubeconfig: str, namespace: str, name: str) -> int:
    """How many nodes the cluster has while the DaemonSet exists (they run flannel); 0 when it does not exist."""
    try:
        with session(kubeconfig, f"read {namespace}/{name}") as kube:
            if not _present(kube, namespace, name):
                return 0
            core = kube.core
            return len(kube.call("list nodes", lambda: core.list_node(_request_timeout=REQUEST_TIMEOUT)).items)
    except CalicoError as exc:
        raise _removal_error(namespace, name, exc) from None


def delete(kubeconfig: str, namespace: str, name: str, timeout: float, *,
           pause: Callable[[float], None] = time.sleep) -> bool:
    """Delete the DaemonSet (foreground) and wait until it is gone; whether it existed. ``pause`` raises when the
    operation is stopped."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        with session(kubeconfig, f"remove {namespace}/{name}") as kube:
            apps = kube.apps

            def request() -> bool:
                try:
                    apps.delete_namespaced_daemon_set(name, namespace, body=client.V1DeleteOptions(
                        propagation_policy="Foreground"), _request_timeout=REQUEST_TIMEOUT)
                except ApiException as exc:
                    if exc.status == 404:
                        return False
                    raise
                return True

            existed = kube.call(f"delete DaemonSet {namespace}/{name}", request)
            deadline = time.monotonic() + timeout
            while existed and _present(kube, namespace, name):
                if time.monotonic() > deadline:
                    raise FlannelRemovalError(
                        f"DaemonSet {namespace}/{name} still exists {timeout:g}s after deletion; check for "
                        "finalizers, then run `pulumi up` again")
                pause(1.0)
            return existed
    except (FlannelRemovalError, OperationStoppedError):
        raise
    except CalicoError as exc:
        raise _removal_error(namespace, name, exc) from None
