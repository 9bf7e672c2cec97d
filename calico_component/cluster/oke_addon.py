"""Disabling an OKE cluster add-on through the OCI SDK: its state, the disable call and its work request, all within
one retry budget; what ``flannel.OkeAddonDisabled`` runs on create, update and refresh."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..errors import FlannelRemovalError, OciApiError
from .oci_api import TRANSIENT_STATUSES, OciSettings, Retry, call, client

#: The add-on is disabled (or there is none of that name): the state the resource wants.
GONE_STATES = frozenset({"DELETED", "ABSENT"})
#: An operation is in flight on the add-on: OKE answers 409 to another one until it ends.
_BUSY_STATES = frozenset({"CREATING", "UPDATING", "DELETING"})
_WORK_REQUEST_DONE = "SUCCEEDED"
_WORK_REQUEST_FAILED = frozenset({"FAILED", "CANCELED", "CANCELING"})
_FLANNEL = "Flannel"
#: How long a refresh keeps trying OCI before it keeps the last known state.
REFRESH_TIMEOUT_SECONDS = 60.0


def settings_of(props: dict[str, Any]) -> OciSettings:
    """The OCI settings the step's properties carry (the component's one OCI configuration)."""
    return OciSettings(auth=props.get("auth") or "api_key", profile=props.get("profile"),
                       config_file=props.get("config_file"), region=props.get("region"), endpoint=props.get("endpoint"),
                       request_timeout=float(props.get("request_timeout_seconds") or 60))


def _oci_client(props: dict[str, Any]) -> Any:
    return client(settings_of(props), purpose=f"disable the {props.get('addon_name')} add-on (or set "
                  "disable_flannel_addon=False to skip the OKE add-on step)")


def _budget(props: dict[str, Any], pause: Callable[[float], None], seconds: float | None = None) -> Retry:
    """The retry budget of one add-on step: the add-on timeout (or ``seconds``), the base backoff, and how to pause
    (``pause`` raises when the operation is stopped)."""
    return Retry.within(seconds if seconds is not None else float(props.get("timeout_seconds") or 900),
                        float(props.get("retry_base_seconds") or 1), sleep=pause)


def _addon_state(client: Any, props: dict[str, Any], retry: Retry) -> str:
    """The add-on's lifecycle state; ``ABSENT`` when the cluster has none of that name (disabled with its resources
    removed). A name OKE does not offer at all is a mistake, not an absent add-on: an error naming the add-ons the
    cluster has and those OKE offers."""
    import oci

    cluster_id, name = props["cluster_id"], props["addon_name"]
    try:
        addon = call(f"reading OKE add-on {name} of cluster {cluster_id}",
                     lambda: client.get_addon(cluster_id, name), retry, passthrough=frozenset({404}))
    except oci.exceptions.ServiceError:
        # 404 NotAuthorizedOrNotFound: no such add-on, unless the cluster itself cannot be read.
        cluster = call(f"reading OKE cluster {cluster_id}", lambda: client.get_cluster(cluster_id), retry).data
        _refuse_unknown_name(client, props, str(cluster.kubernetes_version or ""), retry)
        return "ABSENT"
    return str(addon.data.lifecycle_state)


def _refuse_unknown_name(client: Any, props: dict[str, Any], kubernetes_version: str, retry: Retry) -> None:
    cluster_id, name = props["cluster_id"], props["addon_name"]
    installed = sorted(str(a.name) for a in call(f"listing the add-ons of OKE cluster {cluster_id}",
                                                  lambda: client.list_addons(cluster_id), retry).data)
    offered = sorted(str(a.name) for a in call(f"listing the add-ons OKE offers for Kubernetes {kubernetes_version}",
                                                lambda: client.list_addon_options(kubernetes_version), retry).data)
    if name in installed or name in offered:
        return
    raise FlannelRemovalError(
        f"OKE has no add-on named {name!r}: cluster {cluster_id} has {', '.join(installed) or 'no add-ons'}, and OKE "
        f"offers {', '.join(offered) or 'none'} for Kubernetes {kubernetes_version}. Set flannel_addon_name "
        f"(flannelAddonName) to the flannel add-on's name (OKE calls it {_FLANNEL!r}), or disable_flannel_addon=False "
        "when the cluster has no flannel add-on")


def _past(retry: Retry, poll: float) -> bool:
    return time.monotonic() + poll > retry.deadline


def _settled_state(client: Any, props: dict[str, Any], retry: Retry) -> str:
    """The add-on's state once no operation is in flight on it: a DELETING/UPDATING add-on (an earlier, interrupted
    `up`, or someone else) is waited for, never disabled a second time."""
    poll = float(props.get("poll_seconds") or 5)
    while (state := _addon_state(client, props, retry)) in _BUSY_STATES:
        if _past(retry, poll):
            raise FlannelRemovalError(
                f"OKE add-on {props['addon_name']} of cluster {props['cluster_id']} is still {state} after "
                f"{props.get('timeout_seconds') or 900:g}s: an operation on it is in flight (an earlier, interrupted "
                "`up`?). Check its work request in the OCI console, then run `pulumi up` again")
        retry.sleep(poll)
    return state


def _wait_work_request(client: Any, work_request_id: str, props: dict[str, Any], retry: Retry) -> None:
    """Poll the work request until it succeeds; transient errors are retried within the add-on timeout."""
    poll = float(props.get("poll_seconds") or 5)
    while True:
        wr = call(f"reading OKE work request {work_request_id}", lambda: client.get_work_request(work_request_id),
                  retry).data
        status = str(wr.status)
        if status == _WORK_REQUEST_DONE:
            return
        if status in _WORK_REQUEST_FAILED:
            raise FlannelRemovalError(
                f"OKE work request {work_request_id} disabling add-on {props['addon_name']} ended {status}; "
                "see the work request's errors in the OCI console, fix the cause, and run `pulumi up` again"
            )
        if _past(retry, poll):
            raise FlannelRemovalError(
                f"OKE work request {work_request_id} disabling add-on {props['addon_name']} still {status} after "
                f"{props.get('timeout_seconds') or 900:g}s; it may still finish: check it, then run `pulumi up` again "
                "(raise addon_timeout_seconds if needed)"
            )
        retry.sleep(poll)


_CONFLICT = "conflict"


def _request_disable(client: Any, props: dict[str, Any], retry: Retry) -> str | None:
    """Ask OKE to disable the add-on: its work request id, None when OKE has no such add-on any more, or
    ``_CONFLICT`` when OKE answered 409 (an operation started on it meanwhile)."""
    import oci

    cluster_id, name = props["cluster_id"], props["addon_name"]
    try:
        response = call(f"disabling OKE add-on {name} of cluster {cluster_id}",
                        lambda: client.disable_addon(cluster_id, name, bool(props.get("remove_resources", True))),
                        retry, passthrough=frozenset({404, 409}))
    except oci.exceptions.ServiceError as exc:
        return None if exc.status == 404 else _CONFLICT
    return response.headers.get("opc-work-request-id") or None


def disable_addon(props: dict[str, Any], pause: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Make sure the add-on is disabled (and its resources removed); already disabled is success."""
    client, retry = _oci_client(props), _budget(props, pause)
    poll = float(props.get("poll_seconds") or 5)
    state, work_request_id = _settled_state(client, props, retry), None
    while state not in GONE_STATES:
        outcome = _request_disable(client, props, retry)
        if outcome == _CONFLICT:
            if _past(retry, poll):
                raise FlannelRemovalError(
                    f"OKE kept answering 409 Conflict to disabling add-on {props['addon_name']} of cluster "
                    f"{props['cluster_id']}; check the cluster's work requests in the OCI console, then run `pulumi up` "
                    "again")
            retry.sleep(poll)
            state = _settled_state(client, props, retry)
            continue
        work_request_id = outcome
        if work_request_id:
            _wait_work_request(client, work_request_id, props, retry)
        state = "DELETED"
    return {**props, "addon_state": state, "work_request_id": work_request_id}


def refreshed_state(props: dict[str, Any], warn: Callable[[str], None],
                    pause: Callable[[float], None] = time.sleep) -> str | None:
    """The add-on's state for ``pulumi refresh``; when OCI cannot be reached after the retries, the last known state,
    with a warning (a flaky OCI API must not fail every preview). Permanent answers (401, 403, 404) still fail."""
    try:
        return _addon_state(_oci_client(props), props, _budget(props, pause, REFRESH_TIMEOUT_SECONDS))
    except OciApiError as exc:
        if exc.status is not None and exc.status not in TRANSIENT_STATUSES:
            raise
        last = props.get("addon_state")
        warn(f"refresh could not confirm the state of OKE add-on {props.get('addon_name')}, keeping the "
                        f"last known one ({last}): {exc}")
        return None if last is None else str(last)
