"""Map one Kubernetes object to its typed pulumi-kubernetes resource, with a deterministic logical name."""

from __future__ import annotations

import importlib
import re
from typing import Any, cast

import pulumi

from ..errors import ManifestShapeError
from ..manifest.parsing import K8sObject, object_key

# (apiVersion, kind) -> (pulumi_kubernetes module, class). Every kind a Calico manifest of
# the supported releases contains, plus the few a future release plausibly adds.
_KINDS: dict[tuple[str, str], tuple[str, str]] = {
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"): ("pulumi_kubernetes.apiextensions.v1",
                                                              "CustomResourceDefinition"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): ("pulumi_kubernetes.rbac.v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): ("pulumi_kubernetes.rbac.v1", "ClusterRoleBinding"),
    ("rbac.authorization.k8s.io/v1", "Role"): ("pulumi_kubernetes.rbac.v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): ("pulumi_kubernetes.rbac.v1", "RoleBinding"),
    ("v1", "ServiceAccount"): ("pulumi_kubernetes.core.v1", "ServiceAccount"),
    ("v1", "ConfigMap"): ("pulumi_kubernetes.core.v1", "ConfigMap"),
    ("v1", "Secret"): ("pulumi_kubernetes.core.v1", "Secret"),
    ("v1", "Service"): ("pulumi_kubernetes.core.v1", "Service"),
    ("v1", "Namespace"): ("pulumi_kubernetes.core.v1", "Namespace"),
    ("apps/v1", "DaemonSet"): ("pulumi_kubernetes.apps.v1", "DaemonSet"),
    ("apps/v1", "Deployment"): ("pulumi_kubernetes.apps.v1", "Deployment"),
    ("policy/v1", "PodDisruptionBudget"): ("pulumi_kubernetes.policy.v1", "PodDisruptionBudget"),
}

# Top-level fields of those kinds, in the Python SDK's keyword spelling.
_FIELD_ARGS: dict[str, str] = {
    "metadata": "metadata",
    "spec": "spec",
    "data": "data",
    "binaryData": "binary_data",
    "stringData": "string_data",
    "immutable": "immutable",
    "type": "type",
    "rules": "rules",
    "aggregationRule": "aggregation_rule",
    "roleRef": "role_ref",
    "subjects": "subjects",
    "automountServiceAccountToken": "automount_service_account_token",
    "imagePullSecrets": "image_pull_secrets",
    "secrets": "secrets",
}

# Server-owned: the API server ignores it on apply, so it is not sent.
_IGNORED_FIELDS = frozenset({"apiVersion", "kind", "status"})

SKIP_AWAIT_ANNOTATION = "pulumi.com/skipAwait"
PATCH_FORCE_ANNOTATION = "pulumi.com/patchForce"


def type_token(obj: K8sObject) -> str:
    """``kubernetes:<apiVersion>:<kind>`` with the core group spelled ``core/v1`` as the provider does."""
    api = obj.get("apiVersion", "")
    return f"kubernetes:{'core/' + api if '/' not in api else api}:{obj.get('kind', '')}"


def is_crd(obj: K8sObject) -> bool:
    return obj.get("kind") == "CustomResourceDefinition"


def logical_name(prefix: str, obj: K8sObject) -> str:
    """``<prefix>-<kind>-[<namespace>-]<name>``: stable across Calico versions, unique per stack."""
    kind, ns, name = object_key(obj)
    parts = [prefix, kind.lower()] + ([ns] if ns else []) + [name]
    return re.sub(r"[^A-Za-z0-9._-]", "-", "-".join(parts))


def supported_kinds() -> list[str]:
    return sorted(f"{a}/{k}" for a, k in _KINDS)


def check_supported(objects: list[K8sObject], version: str) -> None:
    """Fail before registering anything if an object has a kind or a field this module cannot map."""
    for obj in objects:
        key = (obj.get("apiVersion", ""), obj.get("kind", ""))
        if key not in _KINDS:
            raise ManifestShapeError(
                f"Calico {version} manifest contains {key[1]} ({key[0]}) {object_key(obj)[2]}, a kind calico-oke "
                f"does not deploy yet (supported: {', '.join(supported_kinds())}); nothing was deployed"
            )
        unknown = set(obj) - set(_FIELD_ARGS) - _IGNORED_FIELDS
        if unknown:
            raise ManifestShapeError(
                f"Calico {version} manifest: {key[1]} {object_key(obj)[2]} has unexpected top-level field(s) "
                f"{', '.join(sorted(unknown))}; nothing was deployed"
            )


def with_annotations(obj: K8sObject, extra: dict[str, str]) -> K8sObject:
    """A copy of ``obj`` with ``extra`` added to its annotations (the input is not changed)."""
    if not extra:
        return obj
    meta: dict[str, Any] = dict(cast(dict[str, Any], obj.get("metadata") or {}))
    annotations = dict(meta.get("annotations") or {})
    annotations.update(extra)
    meta["annotations"] = annotations
    new: dict[str, Any] = dict(cast(dict[str, Any], obj))
    new["metadata"] = meta
    return cast(K8sObject, new)


def create_resource(name: str, obj: K8sObject, opts: pulumi.ResourceOptions) -> pulumi.CustomResource:
    """Register ``obj`` as its typed pulumi-kubernetes resource."""
    module_name, class_name = _KINDS[(obj.get("apiVersion", ""), obj.get("kind", ""))]
    cls = getattr(importlib.import_module(module_name), class_name)
    kwargs: dict[str, Any] = {_FIELD_ARGS[k]: v for k, v in obj.items() if k in _FIELD_ARGS}
    resource: pulumi.CustomResource = cls(name, opts=opts, **kwargs)
    return resource
