"""The one way calico-oke reads and writes a cluster itself: a client for the kubeconfig it was given (never the
current kube context), one timeout and throttling policy, every failure mapped into the CalicoError tree (no
kubernetes or urllib3 exception leaves this module), a failing exec credential plugin explained once, and the
cluster's identity (which cluster a kubeconfig names, whatever its token)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ..credentials import load_kubeconfig, scrub, secret_values
from ..errors import ClusterAccessError, ClusterAuthError, ClusterUnreachableError, ConfigurationError

#: Per request: seconds to connect, seconds to wait for the answer. Short, so an unreachable cluster is reported in
#: seconds (with one request first, never a burst); a wait counts a timed-out poll as one without progress.
REQUEST_TIMEOUT = (3.0, 10.0)
#: How often a throttled request (429, 503) is tried again, after its Retry-After, before its status is reported.
THROTTLE_RETRIES = 5
_T = TypeVar("_T")


class _Collected(logging.Handler):
    """Keeps the error records the Kubernetes client logs while it loads a kubeconfig (a failing exec plugin is only
    logged there, and the client goes on without a token)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _current(doc: dict[str, Any], section: str, key: str) -> dict[str, Any]:
    """The ``section`` entry (``clusters``/``users``) the current context names under ``key``."""
    contexts = {c.get("name"): c.get("context") or {} for c in doc.get("contexts") or [] if isinstance(c, dict)}
    current = contexts.get(doc.get("current-context")) or next(iter(contexts.values()), {})
    entries = {e.get("name"): e.get(section[:-1]) or {} for e in doc.get(section) or [] if isinstance(e, dict)}
    found = entries.get(current.get(key))
    return found if isinstance(found, dict) else {}


def exec_plugin(doc: dict[str, Any]) -> dict[str, Any] | None:
    """The current user's exec credential plugin (``command``, ``args``, ``env``), if it has one."""
    plugin = _current(doc, "users", "user").get("exec")
    return plugin if isinstance(plugin, dict) else None


def _exec_failure(doc: dict[str, Any], logged: Sequence[str], secrets: set[str]) -> str | None:
    """What a failing exec credential plugin said, with its command, or None when it worked (or there is none)."""
    plugin = exec_plugin(doc)
    failures = [m for m in logged if m.startswith("exec:")]
    if plugin is None or not failures:
        return None
    words = [str(plugin.get("command", "")), *[str(a) for a in plugin.get("args") or []]]
    # The command and its arguments are shown (they say which plugin to fix); its env values and tokens never are.
    return (f"the kubeconfig's credential plugin `{' '.join(words)}` failed, so there is no token: "
            f"{scrub(failures[0], secrets)}")


def _throttling_only() -> Any:
    """urllib3 retries for an API server's throttling only: 429 (API Priority and Fairness) and 503, after their
    Retry-After, at most THROTTLE_RETRIES times; never after a connect or read timeout (REQUEST_TIMEOUT bounds those)."""
    import urllib3

    return urllib3.Retry(total=THROTTLE_RETRIES, connect=0, read=0, other=0, status=THROTTLE_RETRIES,
                         status_forcelist=(429, 503), backoff_factor=0.5, respect_retry_after_header=True,
                         raise_on_status=False)


def _bounded_client(doc: dict[str, Any]) -> tuple[Any, list[str]]:
    """An ApiClient that retries only throttled requests, and the errors the client logged while loading."""
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


@dataclass
class Kube:
    """A session with one cluster: typed clients over one ApiClient, and ``call`` mapping every failure."""

    api_client: Any
    purpose: str

    @property
    def server(self) -> str:
        return str(getattr(self.api_client.configuration, "host", "the API server"))

    @property
    def core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.api_client)

    @property
    def apps(self) -> Any:
        from kubernetes import client

        return client.AppsV1Api(self.api_client)

    @property
    def net(self) -> Any:
        from kubernetes import client

        return client.NetworkingV1Api(self.api_client)

    def call(self, what: str, fn: Callable[[], _T]) -> _T:
        """``fn()`` against the API server; any failure becomes a ClusterAccessError naming ``what`` and the fix."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return fn()
        except ApiException as exc:
            raise refused(self.server, int(exc.status or 0), what, str(exc.reason or "")) from None
        except (HTTPError, OSError) as exc:
            raise unreachable(self.server, type(exc).__name__) from None

    def get(self, path: str) -> tuple[int, bytes]:
        """One authenticated GET: (HTTP status, body); no answer is a ClusterUnreachableError."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            method, url, headers, _, _ = self.api_client.param_serialize(
                "GET", path, header_params={"Accept": "application/json"}, auth_settings=["BearerToken"])
            response = self.api_client.call_api(method, url, header_params=headers, _request_timeout=REQUEST_TIMEOUT)
            response.read()
        except (HTTPError, ApiException, OSError) as exc:
            raise unreachable(self.server, type(exc).__name__) from None
        return int(response.status), bytes(response.data)


def unreachable(server: str, why: str) -> ClusterUnreachableError:
    return ClusterUnreachableError(
        f"{server} did not answer within {REQUEST_TIMEOUT[0]:g}s to connect and {REQUEST_TIMEOUT[1]:g}s to reply "
        f"({why}): check that this machine can reach the cluster's API endpoint (VPN, bastion, private endpoint)")


def refused(server: str, status: int, what: str, reason: str = "") -> ClusterAccessError:
    """The error for an HTTP error answer to ``what``: 401 and 403 say what to fix; others name the status."""
    if status == 401:
        return ClusterAuthError(
            f"the API server {server} rejected the kubeconfig's credentials (HTTP 401) when trying to {what}: its "
            "token or certificate is missing or expired (for OKE: check that `oci ce cluster generate-token` works "
            "with the same OCI profile)", status)
    if status == 403:
        return ClusterAuthError(
            f"the kubeconfig's user may not {what} (HTTP 403 from {server}): grant it the RBAC permissions calico-oke "
            "needs (docs/oci-permissions.md), or use a kubeconfig with cluster-admin", status)
    return ClusterAccessError(f"{what} failed: HTTP {status} {reason}".rstrip() + f" from {server}", status)


@contextlib.contextmanager
def session(kubeconfig: str, purpose: str) -> Iterator[Kube]:
    """A session with the cluster of ``kubeconfig`` (its contents), closed afterwards. A bad kubeconfig is a
    ConfigurationError saying what it was needed for, a failing exec credential plugin a ClusterAuthError with its
    command and output; no secret of the kubeconfig is ever quoted."""
    from kubernetes import config

    secrets = secret_values(kubeconfig)
    try:
        doc = load_kubeconfig(kubeconfig)
        api_client, logged = _bounded_client(doc)
    except ConfigurationError as exc:
        raise ConfigurationError(f"cannot {purpose}: {exc}") from None
    except (config.ConfigException, TypeError, ValueError) as exc:
        raise ConfigurationError(f"cannot load the kubeconfig to {purpose}: {scrub(str(exc), secrets)}") from None
    try:
        failure = _exec_failure(doc, logged, secrets)
        if failure:
            raise ClusterAuthError(f"cannot {purpose}: {failure}")
        yield Kube(api_client, purpose)
    finally:
        api_client.close()


def _flag(args: Sequence[Any], name: str) -> str | None:
    """The value of ``--name value`` or ``--name=value`` in an argument list."""
    words = [str(a) for a in args]
    for i, word in enumerate(words):
        if word == name and i + 1 < len(words):
            return words[i + 1]
        if word.startswith(name + "="):
            return word.split("=", 1)[1]
    return None


def oke_cluster_id(doc: dict[str, Any]) -> str | None:
    """The OKE cluster OCID an OKE kubeconfig's token command names (``oci ce cluster generate-token --cluster-id``)."""
    plugin = exec_plugin(doc)
    return _flag(plugin.get("args") or [], "--cluster-id") if plugin else None


def server_of(doc: dict[str, Any]) -> str:
    """The API server URL of the current context's cluster."""
    return str(_current(doc, "clusters", "cluster").get("server") or "")


def _ca_digest(doc: dict[str, Any]) -> str:
    cluster = _current(doc, "clusters", "cluster")
    data = cluster.get("certificate-authority-data")
    if isinstance(data, str) and data:
        try:
            raw = base64.b64decode(data, validate=False)
        except ValueError:
            raw = data.encode()
        return hashlib.sha256(raw).hexdigest()[:16]
    path = cluster.get("certificate-authority")
    return f"file {path}" if path else "no CA"


def identity(kubeconfig: str) -> str:
    """Which cluster ``kubeconfig`` names, whatever its credentials: the OKE cluster OCID for an OKE kubeconfig (what
    ``cluster_id`` gives too), else ``<server URL> (CA sha256 <first 16 hex digits>)``. A rotated token or a new user
    keeps it; another cluster changes it."""
    doc = load_kubeconfig(kubeconfig)
    return oke_cluster_id(doc) or f"{server_of(doc)} (CA sha256 {_ca_digest(doc)})"
