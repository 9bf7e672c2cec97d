"""Flannel removal as Pulumi dynamic resources: disable the OKE Flannel add-on (its OCI calls in ``oke_addon``),
delete kube-flannel-ds.

Both resources are idempotent (an add-on already disabled or a DaemonSet already absent is
success), report drift on ``pulumi refresh`` (``addon_state`` / ``present`` outputs), and do
nothing on destroy: re-enabling flannel under a cluster whose pod network is Calico would
break it, so destroy only forgets them (see docs/upgrading-and-adoption.md, "What `pulumi destroy` does").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import pulumi
import pulumi.dynamic as dyn

from ..credentials import load_kubeconfig, scrub, secret_values
from ..errors import ConfigurationError, FlannelRemovalError
from .oke_addon import GONE_STATES, disable_addon, refreshed_state

DEFAULT_FLANNEL_ADDON_NAME = "Flannel"
FLANNEL_NAMESPACE = "kube-system"
FLANNEL_DAEMONSET = "kube-flannel-ds"
_UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # the engine's marker for a value unknown during preview
T = TypeVar("T")


class OkeAddonDisabledProvider(dyn.ResourceProvider):
    """CRUD for "this OKE cluster add-on is disabled" through the official OCI SDK."""

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> dyn.CheckResult:
        failures = []
        first_create = not olds
        nodes = news.get("existing_node_count")
        if first_create and isinstance(nodes, int) and nodes > 0 and not news.get("allow_existing_nodes"):
            failures.append(dyn.CheckFailure(
                "existing_node_count",
                f"cluster {news.get('cluster_id')} already has {nodes} worker node(s). Replacing flannel with "
                "Calico only affects nodes created afterwards, so Oracle recommends not doing it on a cluster with "
                "worker nodes. Create node pools after Calico (depends_on=[calico]), or set "
                "allow_existing_nodes=True and recycle the existing nodes yourself.",
            ))
        return dyn.CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dyn.DiffResult:
        keys = ("cluster_id", "addon_name", "remove_resources", "endpoint", "region", "profile", "auth")
        changed = [k for k in keys if olds.get(k) != news.get(k)]
        drifted = olds.get("addon_state") not in GONE_STATES
        replaces: list[str] = [k for k in ("cluster_id", "addon_name") if k in changed]
        return dyn.DiffResult(
            changes=bool(changed) or drifted,
            replaces=replaces,
            delete_before_replace=False,
        )

    def create(self, props: dict[str, Any]) -> dyn.CreateResult:
        outs = disable_addon(props)
        return dyn.CreateResult(f"{props['cluster_id']}/{props['addon_name']}", outs)

    def read(self, id_: str, props: dict[str, Any]) -> dyn.ReadResult:
        return dyn.ReadResult(id_, {**props, "addon_state": refreshed_state(props)})

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> dyn.UpdateResult:
        return dyn.UpdateResult(disable_addon(news))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        # Deliberately a no-op: re-enabling flannel on a Calico cluster breaks its pod network.
        return None


class OkeAddonDisabled(dyn.Resource):
    """The OKE cluster add-on ``addon_name`` (default ``Flannel``) is disabled with its resources removed."""

    addon_state: pulumi.Output[str]
    work_request_id: pulumi.Output[str | None]

    def __init__(
        self,
        name: str,
        *,
        cluster_id: pulumi.Input[str],
        addon_name: str = DEFAULT_FLANNEL_ADDON_NAME,
        remove_resources: bool = True,
        region: str | None = None,
        profile: str | None = None,
        config_file: str | None = None,
        auth: str = "api_key",
        endpoint: str | None = None,
        timeout_seconds: float = 900,
        poll_seconds: float = 5,
        retry_base_seconds: float = 1,
        existing_node_count: pulumi.Input[int] | None = None,
        allow_existing_nodes: bool = False,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "cluster_id": cluster_id,
            "addon_name": addon_name,
            "remove_resources": remove_resources,
            "region": region,
            "profile": profile,
            "config_file": config_file,
            "auth": auth,
            "endpoint": endpoint,
            "timeout_seconds": timeout_seconds,
            "poll_seconds": poll_seconds,
            "retry_base_seconds": retry_base_seconds,
            "existing_node_count": existing_node_count,
            "allow_existing_nodes": allow_existing_nodes,
            "addon_state": None,
            "work_request_id": None,
        }
        super().__init__(OkeAddonDisabledProvider(), name, props, opts)


# --- kube-flannel-ds --------------------------------------------------------------------------


def _k8s_api(props: dict[str, Any]) -> Any:
    """A client for the kubeconfig given to this resource, and never the machine's current kube context: deleting
    kube-flannel-ds on whichever cluster happens to be current would take down that cluster's pod network."""
    from kubernetes import config

    kubeconfig = props.get("kubeconfig")
    where = f"{props.get('namespace')}/{props.get('name')}"
    if not kubeconfig:
        raise FlannelRemovalError(
            f"removing {where} needs the kubeconfig of the cluster Calico is installed on; calico-oke never uses the "
            "current kube context. Pass kubeconfig (its contents) or an OKE cluster_id to CalicoArgs")
    try:
        return config.new_client_from_config_dict(  # type: ignore[no-untyped-call]
            load_kubeconfig(kubeconfig), context=props.get("context"))
    except ConfigurationError as exc:
        raise FlannelRemovalError(f"cannot remove {where}: {exc}") from None  # its cause would quote the file
    except (config.ConfigException, TypeError) as exc:
        # The client's messages name keys, but scrub every credential value in case one is echoed.
        raise FlannelRemovalError(
            f"cannot load the kubeconfig to remove {where}: {scrub(str(exc), secret_values(kubeconfig))}"
        ) from None


def _k8s_call(what: str, fn: Callable[[], T]) -> T:
    """``fn()`` against the API server; an HTTP error or no answer becomes a FlannelRemovalError naming ``what``."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        return fn()
    except ApiException as exc:
        raise FlannelRemovalError(f"{what} failed: HTTP {exc.status} {exc.reason}") from exc
    except (HTTPError, OSError) as exc:
        raise FlannelRemovalError(f"{what} failed: the API server did not answer ({type(exc).__name__}: {exc})") from exc


def _daemonset_present(props: dict[str, Any]) -> bool:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    api = client.AppsV1Api(_k8s_api(props))
    ns, name = props["namespace"], props["name"]

    def read() -> bool:
        try:
            api.read_namespaced_daemon_set(name, ns, _request_timeout=(5, 30))
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    return _k8s_call(f"reading DaemonSet {ns}/{name}", read)


def delete_daemonset(props: dict[str, Any]) -> dict[str, Any]:
    """Delete the DaemonSet (foreground) and wait until it is gone; already absent is success."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    api = client.AppsV1Api(_k8s_api(props))
    ns, name = props["namespace"], props["name"]

    def delete() -> bool:
        try:
            api.delete_namespaced_daemon_set(
                name, ns, body=client.V1DeleteOptions(propagation_policy="Foreground"), _request_timeout=(5, 30))
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    existed = _k8s_call(f"deleting DaemonSet {ns}/{name}", delete)
    deadline = time.monotonic() + float(props.get("timeout_seconds") or 300)
    while existed and _daemonset_present(props):
        if time.monotonic() > deadline:
            raise FlannelRemovalError(
                f"DaemonSet {ns}/{name} still exists {props.get('timeout_seconds')}s after deletion; "
                "check for finalizers, then run `pulumi up` again"
            )
        time.sleep(1)
    return {**props, "present": False, "existed": existed}


def _node_count(props: dict[str, Any]) -> int:
    from kubernetes import client

    api = client.CoreV1Api(_k8s_api(props))
    return _k8s_call("listing nodes", lambda: len(api.list_node(_request_timeout=(5, 30)).items))


class DaemonSetAbsentProvider(dyn.ResourceProvider):
    """CRUD for "this DaemonSet does not exist" through the official Kubernetes client."""

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> dyn.CheckResult:
        failures = []
        first_create = not olds
        if (
            first_create
            and news.get("check_nodes")
            and not news.get("allow_existing_nodes")
            and news.get("kubeconfig") != _UNKNOWN
        ):
            try:
                if _daemonset_present(news) and (count := _node_count(news)) > 0:
                    failures.append(dyn.CheckFailure(
                        "allow_existing_nodes",
                        f"the cluster already has {count} node(s) running flannel. Replacing flannel with Calico "
                        "only affects nodes created afterwards; create nodes after Calico, or set "
                        "allow_existing_nodes=True and recycle the existing nodes yourself.",
                    ))
            except FlannelRemovalError as exc:
                failures.append(dyn.CheckFailure("kubeconfig", str(exc)))
        return dyn.CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dyn.DiffResult:
        changed = [k for k in ("namespace", "name") if olds.get(k) != news.get(k)]
        return dyn.DiffResult(changes=bool(changed) or bool(olds.get("present")), replaces=changed)

    def create(self, props: dict[str, Any]) -> dyn.CreateResult:
        return dyn.CreateResult(f"{props['namespace']}/{props['name']}", delete_daemonset(props))

    def read(self, id_: str, props: dict[str, Any]) -> dyn.ReadResult:
        return dyn.ReadResult(id_, {**props, "present": _daemonset_present(props)})

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> dyn.UpdateResult:
        return dyn.UpdateResult(delete_daemonset(news))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        # Deliberately a no-op: destroy never brings flannel back.
        return None


class DaemonSetAbsent(dyn.Resource):
    """The DaemonSet ``namespace/name`` (default ``kube-system/kube-flannel-ds``) does not exist."""

    present: pulumi.Output[bool]
    existed: pulumi.Output[bool]

    def __init__(
        self,
        name: str,
        *,
        kubeconfig: pulumi.Input[str] | None = None,
        context: str | None = None,
        namespace: str = FLANNEL_NAMESPACE,
        daemonset_name: str = FLANNEL_DAEMONSET,
        timeout_seconds: float = 300,
        check_nodes: bool = True,
        allow_existing_nodes: bool = False,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "kubeconfig": pulumi.Output.secret(kubeconfig) if kubeconfig is not None else None,
            "context": context,
            "namespace": namespace,
            "name": daemonset_name,
            "timeout_seconds": timeout_seconds,
            "check_nodes": check_nodes,
            "allow_existing_nodes": allow_existing_nodes,
            "present": None,
            "existed": None,
        }
        super().__init__(
            DaemonSetAbsentProvider(), name, props,
            pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["kubeconfig"])),
        )
