"""The package's exception tree: every failure a user can act on is a CalicoError."""

from __future__ import annotations


class CalicoError(Exception):
    """Base class of every error raised by calico-oke."""


class ConfigurationError(CalicoError, ValueError):
    """An input has a value the component cannot use (bad network type, node OS, CIDR, ...)."""


class UnsupportedVersionError(ConfigurationError):
    """A Calico version is not in the release table and no digest was given for it."""


class InputError(ConfigurationError):
    """An input given by its camelCase key (the package, the stack program's config, a step of calico-oke's provider)
    is missing, unknown or of the wrong type."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


class CompatibilityError(CalicoError):
    """Strict mode: the Calico / Kubernetes combination was not tested by Oracle."""


class ManifestFetchError(CalicoError):
    """The manifest could not be obtained (network, HTTP status, timeout, offline, missing file)."""


class ChecksumMismatchError(ManifestFetchError):
    """The manifest bytes do not match the expected SHA-256 digest."""


class ManifestShapeError(CalicoError):
    """The manifest does not have the shape the documented edits expect."""


class GuardError(CalicoError):
    """A documented precondition of the OKE procedure is not met (existing nodes, virtual nodes, ...)."""


class ClusterAccessError(CalicoError):
    """calico-oke could not read or change the cluster itself: no answer, refused credentials or permissions, or an
    error answer. ``status`` is the HTTP status, or None when no answer came."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def transient(self) -> bool:
        """No answer, throttling or a server-side fault: worth another attempt (a wait counts it as no progress)."""
        return self.status is None or self.status == 429 or self.status >= 500


class ClusterUnreachableError(ClusterAccessError):
    """The API server did not answer (no route, a silent port, a timeout)."""


class ClusterAuthError(ClusterAccessError):
    """The API server refused the kubeconfig's credentials (401, a failing exec plugin) or its permissions (403)."""


class FlannelRemovalError(CalicoError):
    """A flannel removal step (the OKE add-on, kube-flannel-ds) failed; the message says which and why."""


class OciApiError(FlannelRemovalError):
    """An OCI API call failed for good: a permanent answer (401, 403, 404, bad config), or transient ones that outlasted
    the retries. ``status`` is the last HTTP status, or None when no answer came."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class PolicyCheckError(CalicoError):
    """The policy check could not be run (the API refused an object, no node to check); not a verdict on policy."""


class PolicyNotEnforcedError(CalicoError):
    """The policy check found a node where NetworkPolicy is not enforced, or one where it could not run."""


class RolloutStalledError(CalicoError):
    """A rollout made no progress (no more pods updated and ready) for the progress deadline."""


class OperationStoppedError(CalicoError):
    """A step of calico-oke's provider stopped because `pulumi up` was interrupted (the engine cancelled it)."""


def shape_error(version: str, where: str, field: str, problem: str) -> ManifestShapeError:
    """The error of an edit that found the manifest not as Oracle's edits expect: nothing is transformed."""
    return ManifestShapeError(
        f"Calico {version} manifest: {where}: {field} {problem}; the upstream manifest no longer matches "
        "Oracle's documented edits, so nothing was transformed. Pin a supported version or report this."
    )
