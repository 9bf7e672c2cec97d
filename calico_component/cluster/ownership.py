"""Who manages the Calico objects already on a cluster: this stack, another stack, or a hand install.

Every object the component deploys carries ``calico-oke.io/stack: <organization>/<project>/<stack>``.
Before any provider is configured (so before anything is created, and at ``pulumi preview``), the
component reads the live copies of the objects it is about to manage and refuses when another stack
manages them, or when they were installed by hand and ``adopt_existing`` was not given. CRDs are not
looked at: they are kept on ``destroy`` and taken over by whichever stack installs next. Objects with
no mark that Pulumi applied (a ``pulumi-kubernetes`` field manager) are this stack's own from a release
before the mark; the next ``up`` marks them.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import GuardError
from ..manifest.parsing import K8sObject, object_key

OWNER_ANNOTATION = "calico-oke.io/stack"
#: Field managers pulumi-kubernetes writes with (``pulumi-kubernetes`` for creates, ``pulumi-kubernetes-<id>`` for SSA).
PULUMI_MANAGER_PREFIX = "pulumi-kubernetes"


class OwnershipError(GuardError):
    """Calico's objects on the cluster are managed by another stack, or were installed by hand (no adopt_existing)."""


class ClusterUnreachableError(OwnershipError):
    """The check could not reach the API server: an error with adopt_existing, else a warning."""


class ClusterAuthError(OwnershipError):
    """The API server refused the check's credentials (401, a failing exec plugin) or its permissions (403)."""


@dataclass(frozen=True)
class LiveObject:
    """One object as the API server has it: who marked it, and whether Pulumi ever applied it."""

    kind: str
    namespace: str
    name: str
    owner: str | None
    pulumi_managed: bool

    @property
    def label(self) -> str:
        return f"{self.kind} {self.namespace + '/' if self.namespace else ''}{self.name}"


def _summary(objects: Sequence[LiveObject]) -> str:
    """``DaemonSet kube-system/calico-node and 33 other Calico objects`` (calico-node named first when present)."""
    first = next((o for o in objects if o.kind == "DaemonSet" and o.name == "calico-node"), objects[0])
    others = len(objects) - 1
    return first.label + (f" and {others} other Calico object{'s' if others != 1 else ''}" if others else "")


NEVER_TWO = ("Two stacks must never manage one cluster's Calico: destroying either would delete Calico under the "
             "other. Nothing was changed.")


def same_stack(mark: str, me: str) -> bool:
    """Whether an object's mark is this stack's: its project and stack name match. The organization is not compared:
    it changes when a stack moves between backends (the file backend's ``organization``, a Pulumi Cloud org)."""
    return mark.split("/")[-2:] == me.split("/")[-2:]


def ownership_problem(live: Sequence[LiveObject], me: str, adopt_existing: bool) -> str | None:
    """Why this stack must not manage ``live`` (the existing copies of its objects), or None when it may."""
    others = [o for o in live if o.owner and not same_stack(o.owner, me)]
    if others:
        owners = ", ".join(sorted({str(o.owner) for o in others}))
        return (f"Calico is already installed on this cluster and this stack ({me}) does not manage it: "
                f"{_summary(others)} exist, managed by stack {owners} ({OWNER_ANNOTATION}). Manage Calico from that "
                f"stack, or destroy it there first; adoptExisting is only for a Calico installed by hand, not for "
                f"another stack's. {NEVER_TWO}")
    by_hand = [o for o in live if not o.owner and not o.pulumi_managed]
    if by_hand and not adopt_existing:
        return (f"Calico is already installed on this cluster and this stack ({me}) does not manage it: "
                f"{_summary(by_hand)} exist with no calico-oke stack's mark, as a hand install (kubectl apply) or "
                f"another tool leaves them. If it was installed by hand, set adoptExisting (adopt_existing=True) to "
                f"take it over; if another stack or tool manages it, manage Calico from there. {NEVER_TWO}")
    return None


def _path(obj: K8sObject) -> str:
    """The REST path of one object (every kind the component deploys is its lower-cased kind plus ``s``)."""
    kind, namespace, name = object_key(obj)
    api = obj.get("apiVersion", "")
    base = f"/api/{api}" if "/" not in api else f"/apis/{api}"
    scope = f"/namespaces/{namespace}" if namespace else ""
    return f"{base}{scope}/{kind.lower()}s/{name}"


#: Per request: seconds to connect, seconds to wait for the answer. With no retry and one probe request before the rest,
#: an unreachable API server is reported within about CONNECT + READ seconds, not minutes.
REQUEST_TIMEOUT = (3.0, 10.0)


def get(api_client: Any, path: str) -> tuple[int, bytes]:
    """One authenticated GET through the official client, bounded by REQUEST_TIMEOUT: (HTTP status, body)."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        method, url, headers, _, _ = api_client.param_serialize(
            "GET", path, header_params={"Accept": "application/json"}, auth_settings=["BearerToken"])
        response = api_client.call_api(method, url, header_params=headers, _request_timeout=REQUEST_TIMEOUT)
        response.read()
    except (HTTPError, ApiException, OSError) as exc:
        host = getattr(api_client.configuration, "host", "the API server")
        raise ClusterUnreachableError(f"{host} did not answer within {REQUEST_TIMEOUT[0]:g}s to connect and "
                                      f"{REQUEST_TIMEOUT[1]:g}s to reply ({type(exc).__name__})") from None
    return int(response.status), bytes(response.data)


def _resource(obj: K8sObject) -> str:
    kind, namespace, _ = object_key(obj)
    group = obj.get("apiVersion", "").rpartition("/")[0]
    return f"{kind.lower()}s{'.' + group if group else ''}" + (f" in namespace {namespace}" if namespace else "")


def _refused(status: int, obj: K8sObject, purpose: str) -> OwnershipError:
    """The error for an answer that is not 200 or 404: what went wrong and what the check needs."""
    kind, _, name = object_key(obj)
    if status == 401:
        return ClusterAuthError(
            f"the API server rejected the kubeconfig's credentials (HTTP 401) when reading {kind} {name} to {purpose}: "
            "its token or certificate is missing or expired (for OKE: check that `oci ce cluster generate-token` "
            "works with the same OCI profile). Nothing was changed")
    if status == 403:
        return ClusterAuthError(
            f"the kubeconfig's user may not read {kind} {name} (HTTP 403) to {purpose}: the check needs `get` on "
            f"{_resource(obj)} (and on every kind calico-oke deploys: daemonsets, deployments, serviceaccounts, "
            "configmaps, services, poddisruptionbudgets, clusterroles, clusterrolebindings, roles, rolebindings). "
            "Grant them, or use a kubeconfig with cluster-admin. Nothing was changed")
    return OwnershipError(f"cannot read {kind} {name} to {purpose}: HTTP {status}")


def _read(api_client: Any, obj: K8sObject) -> LiveObject | None:
    kind, namespace, name = object_key(obj)
    status, body = get(api_client, _path(obj))
    if status == 404:
        return None
    if status >= 300:
        raise _refused(status, obj, "check who manages Calico")
    meta = json.loads(body)["metadata"]
    managers = {str(m.get("manager", "")) for m in meta.get("managedFields") or []}
    return LiveObject(kind, namespace, name, (meta.get("annotations") or {}).get(OWNER_ANNOTATION),
                      any(m.startswith(PULUMI_MANAGER_PREFIX) for m in managers))


def read_live(api_client: Any, objects: Iterable[K8sObject]) -> list[LiveObject]:
    """The live copies of ``objects`` that exist (CRDs are not read), a few requests at a time."""
    wanted = [o for o in objects if o.get("kind") != "CustomResourceDefinition"]
    if not wanted:
        return []
    # One request first: an unreachable or refusing server is reported once, not by a burst of parallel timeouts.
    first = _read(api_client, wanted[0])
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        found = [first, *pool.map(lambda o: _read(api_client, o), wanted[1:])]
    return [o for o in found if o is not None]


class _Collected(logging.Handler):
    """Keeps the error records the Kubernetes client logs while it loads a kubeconfig (a failing exec plugin is only
    logged there, and the client goes on without a token)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _exec_failure(doc: dict[str, Any], logged: Sequence[str], secrets: set[str]) -> str | None:
    """What a failing exec credential plugin said, with its command, or None when it worked (or there is none)."""
    from ..credentials import scrub

    contexts = {c.get("name"): c.get("context") or {} for c in doc.get("contexts") or []}
    user_name = (contexts.get(doc.get("current-context")) or {}).get("user")
    users = {u.get("name"): u.get("user") or {} for u in doc.get("users") or []}
    plugin = (users.get(user_name) or {}).get("exec")
    failures = [m for m in logged if m.startswith("exec:")]
    if not isinstance(plugin, dict) or not failures:
        return None
    words = [str(plugin.get("command", "")), *[str(a) for a in plugin.get("args") or []]]
    # The command and its arguments are shown (they say which plugin to fix); its env values and tokens never are.
    failure = scrub(failures[0], secrets)
    return f"the kubeconfig's credential plugin `{' '.join(words)}` failed, so there is no token: {failure}"


#: How often a throttled read (429, 503) is tried again before its status is reported.
THROTTLE_RETRIES = 5


def _bounded_client(doc: dict[str, Any]) -> tuple[Any, list[str]]:
    """An ApiClient that retries only throttled requests (REQUEST_TIMEOUT bounds each request), and the errors the
    client logged while loading (a failing exec plugin's among them)."""
    from kubernetes import client, config

    configuration = type.__call__(client.Configuration)
    collected = _Collected()
    logging.getLogger().addHandler(collected)
    try:
        config.load_kube_config_from_dict(doc, client_configuration=configuration)  # type: ignore[no-untyped-call]
    finally:
        logging.getLogger().removeHandler(collected)
    configuration.retries = _throttling_only()
    return client.ApiClient(configuration), collected.messages


def _throttling_only() -> Any:
    """urllib3 retries for an API server's throttling only: 429 (API Priority and Fairness) and 503, after their
    Retry-After, at most THROTTLE_RETRIES times; never after a connect or read timeout (REQUEST_TIMEOUT bounds those)."""
    import urllib3

    return urllib3.Retry(total=THROTTLE_RETRIES, connect=0, read=0, other=0, status=THROTTLE_RETRIES,
                         status_forcelist=(429, 503), backoff_factor=0.5, respect_retry_after_header=True,
                         raise_on_status=False)


@contextlib.contextmanager
def api_client_for(kubeconfig: str, purpose: str) -> Iterator[Any]:
    """An official Kubernetes API client for ``kubeconfig`` (closed afterwards); a bad kubeconfig is an OwnershipError
    saying what it was needed for, and a failing exec credential plugin a ClusterAuthError with its command and
    output; no secret of the kubeconfig is quoted."""
    from kubernetes import config

    from ..credentials import load_kubeconfig, scrub, secret_values

    secrets = secret_values(kubeconfig)
    try:
        doc = load_kubeconfig(kubeconfig)
        api_client, logged = _bounded_client(doc)
    except (config.ConfigException, TypeError, ValueError) as exc:
        raise OwnershipError(f"cannot load the kubeconfig to {purpose}: {scrub(str(exc), secrets)}") from None
    try:
        failure = _exec_failure(doc, logged, secrets)
        if failure:
            raise ClusterAuthError(f"cannot {purpose}: {failure}. Nothing was changed")
        yield api_client
    finally:
        api_client.close()


def check_cluster(kubeconfig: str, objects: Sequence[K8sObject], me: str, adopt_existing: bool) -> None:
    """Read the cluster and raise OwnershipError when this stack must not manage its Calico objects there."""
    with api_client_for(kubeconfig, "check who manages Calico") as api_client:
        problem = ownership_problem(read_live(api_client, objects), me, adopt_existing)
    if problem:
        raise OwnershipError(problem)
