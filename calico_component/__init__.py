"""calico-oke: Calico network policy on Oracle OKE as a Pulumi component, plus the manifest pipeline behind it."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from typing import TYPE_CHECKING, Any

from .errors import (
    CalicoError,
    ChecksumMismatchError,
    ClusterAccessError,
    ClusterAuthError,
    ClusterUnreachableError,
    CompatibilityError,
    ConfigurationError,
    FlannelRemovalError,
    GuardError,
    InputError,
    ManifestFetchError,
    ManifestShapeError,
    OciApiError,
    OperationStoppedError,
    PolicyCheckError,
    PolicyNotEnforcedError,
    RolloutStalledError,
    UnsupportedVersionError,
)
from .manifest.fetch import FetchOptions, fetch_manifest
from .manifest.parsing import K8sObject, dump_manifest, parse_manifest
from .manifest.releases import (
    NETWORK_TYPES,
    NODE_OSES,
    RELEASES,
    SUPPORTED_VERSIONS,
    NetworkType,
    NodeOS,
    Release,
    check_compatibility,
    get_release,
)
from .manifest.render import RenderResult, render
from .manifest.transforms import TransformOptions, transform

if TYPE_CHECKING:
    from .component.calico import Calico, CalicoArgs

__all__ = [
    "NETWORK_TYPES",
    "NODE_OSES",
    "RELEASES",
    "SUPPORTED_VERSIONS",
    "Calico",
    "CalicoArgs",
    "CalicoError",
    "ChecksumMismatchError",
    "ClusterAccessError",
    "ClusterAuthError",
    "ClusterUnreachableError",
    "CompatibilityError",
    "ConfigurationError",
    "FetchOptions",
    "FlannelRemovalError",
    "GuardError",
    "InputError",
    "K8sObject",
    "ManifestFetchError",
    "ManifestShapeError",
    "NetworkType",
    "NodeOS",
    "OciApiError",
    "OperationStoppedError",
    "PolicyCheckError",
    "PolicyNotEnforcedError",
    "Release",
    "RenderResult",
    "RolloutStalledError",
    "TransformOptions",
    "UnsupportedVersionError",
    "check_compatibility",
    "dump_manifest",
    "fetch_manifest",
    "get_release",
    "parse_manifest",
    "render",
    "transform",
]


#: Modules stacks deployed by calico-oke 0.1.0 name in their state (the pickled providers of their dynamic
#: resources), answered by the one module that still loads those providers (``component.legacy``).
LEGACY_MODULES = frozenset({f"{__name__}.flannel", f"{__name__}.rollout_wait", f"{__name__}.policy_check"})


class _Legacy(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports a module name recorded in 0.1.0 state as ``component.legacy``."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        return importlib.machinery.ModuleSpec(fullname, self) if fullname in LEGACY_MODULES else None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return importlib.import_module(f"{__name__}.component.legacy")

    def exec_module(self, module: types.ModuleType) -> None:
        return None


if not any(isinstance(finder, _Legacy) for finder in sys.meta_path):
    sys.meta_path.append(_Legacy())


def __getattr__(name: str) -> Any:
    # The Pulumi component is imported on first use, so the CLI and the pure layers start
    # without loading the Pulumi SDK.
    if name in ("Calico", "CalicoArgs"):
        from .component import calico as component

        return getattr(component, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
