"""The one way calico-oke calls OCI: one configuration (``OciSettings``: auth, profile, config file, region,
endpoint) for every call, clients built from it, and calls that survive throttling and transient faults and explain
the permanent ones."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ..errors import OciApiError

T = TypeVar("T")

#: Answers worth another attempt: throttling and server-side faults.
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Longest pause between two attempts, whatever Retry-After asks.
MAX_DELAY_SECONDS = 30.0

_PERMANENT_HINTS = {
    401: "OCI rejected the request signature: check the API key, fingerprint, user and tenancy of the OCI config "
         "profile (oci_profile), or the instance/resource principal set-up (oci_auth)",
    403: "the OCI user or principal lacks permission: it needs an IAM policy such as `Allow group <group> to manage "
         "cluster-family in compartment <compartment>` (or `Allow dynamic-group <group> to manage cluster-family ...` "
         "for oci_auth=instance_principal/resource_principal)",
    404: "the cluster or add-on does not exist, or OCI hides it from this user (404 NotAuthorizedOrNotFound): check "
         "cluster_id, oci_region, and that the user may read the cluster (`inspect cluster-family`)",
}


#: How calico-oke may authenticate to OCI.
OCI_AUTH_METHODS = ("api_key", "instance_principal", "resource_principal")


@dataclass(frozen=True)
class OciSettings:
    """Where and as whom every OCI call of one component goes: the OKE lookups at preview, the kubeconfig OKE serves
    (and its token command), and the Flannel add-on step. Unset values are the OCI SDK's and CLI's defaults."""

    auth: str = "api_key"
    profile: str | None = None
    config_file: str | None = None
    region: str | None = None
    endpoint: str | None = None
    #: Seconds to wait for one answer (connecting takes at most 10).
    request_timeout: float = 60.0

    def describe(self) -> str:
        """How the calls authenticate, for error messages: ``api_key (profile DEFAULT of ~/.oci/config)``."""
        if self.auth != "api_key":
            return self.auth
        return f"api_key (profile {self.profile or 'DEFAULT'} of {self.config_file or '~/.oci/config'})"


def client(settings: OciSettings, kind: str = "container_engine", *, purpose: str = "call OCI") -> Any:
    """An OCI SDK client (``container_engine`` or ``core`` compute) for ``settings``. Retries are this module's
    (``call``), so the SDK's own are off. A configuration that cannot sign requests is an OciApiError saying how to
    fix it."""
    import oci

    kwargs: dict[str, Any] = {
        "retry_strategy": oci.retry.NoneRetryStrategy(),
        "circuit_breaker_strategy": oci.circuit_breaker.NoCircuitBreakerStrategy(),
        "timeout": (10.0, settings.request_timeout),
    }
    if settings.endpoint and kind == "container_engine":
        kwargs["service_endpoint"] = settings.endpoint
    factory = {"container_engine": oci.container_engine.ContainerEngineClient,
               "compute": oci.core.ComputeClient}[kind]
    try:
        if settings.auth == "instance_principal":
            signer = oci.auth.signers.InstancePrincipalsSecurityTokenSigner()
            return factory({"region": settings.region or signer.region}, signer=signer, **kwargs)
        if settings.auth == "resource_principal":
            signer = oci.auth.signers.get_resource_principals_signer()
            return factory({"region": settings.region or signer.region}, signer=signer, **kwargs)
        config = oci.config.from_file(file_location=settings.config_file or oci.config.DEFAULT_LOCATION,
                                      profile_name=settings.profile or oci.config.DEFAULT_PROFILE)
        if settings.region:
            config["region"] = settings.region
        return factory(config, **kwargs)
    except Exception as exc:  # the SDK raises ClientError, ValueError, or requests errors (principal metadata)
        raise OciApiError(
            f"cannot set up OCI authentication ({settings.describe()}) to {purpose}: {type(exc).__name__}: {exc}. "
            "Configure ~/.oci/config (`oci setup config`), or set oci_profile / oci_auth (instance_principal on an "
            "OCI instance)") from None


@dataclass(frozen=True)
class Retry:
    """How long calls may keep trying (a monotonic deadline), and how the pauses between attempts grow."""

    deadline: float
    base_delay: float = 1.0
    sleep: Callable[[float], None] = time.sleep

    @classmethod
    def within(cls, seconds: float, base_delay: float = 1.0, sleep: Callable[[float], None] = time.sleep) -> Retry:
        """A budget of ``seconds`` from now; ``sleep`` pauses between attempts (and raises when the step is stopped)."""
        return cls(time.monotonic() + seconds, base_delay, sleep)

    def pause(self, attempt: int, retry_after: float | None) -> float | None:
        """The pause before attempt ``attempt + 1``: Retry-After when given, else jittered exponential backoff; None
        when the deadline would pass first."""
        delay = retry_after if retry_after is not None else self.base_delay * 2 ** attempt * random.uniform(0.5, 1.0)
        delay = min(delay, MAX_DELAY_SECONDS)
        return None if time.monotonic() + delay > self.deadline else delay


def retry_after_seconds(headers: Any) -> float | None:
    """The Retry-After header in seconds (OCI sends a number), or None when absent or unreadable."""
    value = (headers or {}).get("retry-after") if hasattr(headers, "get") else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def permanent_error(what: str, status: int, code: str, message: str) -> OciApiError:
    """The one error for a permanent answer: the call, the HTTP status, and the fix."""
    hint = _PERMANENT_HINTS.get(status, "fix the request or the OCI configuration, then run `pulumi up` again")
    return OciApiError(f"{what} failed: HTTP {status} {code}: {message}. {hint}", status)


def _outlasted(what: str, attempts: int, started: float, last: str, status: int | None) -> OciApiError:
    return OciApiError(
        f"{what} failed after {attempts} attempt(s) over {time.monotonic() - started:.0f}s: last {last}. OCI is "
        "throttling or unavailable; run `pulumi up` again later (raise addon_timeout_seconds to wait longer)", status)


def call(what: str, fn: Callable[[], T], retry: Retry, *, passthrough: frozenset[int] = frozenset()) -> T:
    """``fn()``, retried on 429 (after its Retry-After), 5xx, connection errors and timeouts until ``retry``'s
    deadline. A status in ``passthrough`` re-raises the SDK's ServiceError for the caller to interpret; any other
    answer fails at once with :func:`permanent_error`."""
    import oci

    started, attempt = time.monotonic(), 0
    while True:
        try:
            return fn()
        except oci.exceptions.ServiceError as exc:
            if exc.status in passthrough:
                raise
            if exc.status not in TRANSIENT_STATUSES:
                raise permanent_error(what, exc.status, exc.code, exc.message) from exc
            last, status, delay = f"HTTP {exc.status} {exc.code}", exc.status, retry.pause(
                attempt, retry_after_seconds(exc.headers))
        except (oci.exceptions.RequestException, oci.exceptions.ConnectTimeout) as exc:
            last, status, delay = f"{type(exc).__name__}: {exc}", None, retry.pause(attempt, None)
        attempt += 1
        if delay is None:
            raise _outlasted(what, attempt, started, last, status)
        retry.sleep(delay)
