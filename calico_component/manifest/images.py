"""Image references of a manifest: registry prefixes checked, fully qualified names required (OKE's CRI-O from
Kubernetes 1.34.1 pulls nothing else), and the opt-in rewrite to a registry mirror. Pure: no I/O, no pulumi."""

from __future__ import annotations

import copy
import re
from typing import Any

from ..errors import ConfigurationError, shape_error
from .parsing import K8sObject, Manifest, describe

_REGISTRY_RE = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9._-]+)*$")


def validate_registry(registry: str) -> str:
    """A registry prefix such as ``iad.ocir.io/mytenancy`` (what goes before ``calico/<image>``): a registry host
    first, no scheme, no tag."""
    r = registry.strip().rstrip("/")
    if not r or "://" in r or not _REGISTRY_RE.match(r):
        raise ConfigurationError(
            f"image registry {registry!r} is not a registry prefix like 'iad.ocir.io/mytenancy' "
            "(lowercase host[:port]/path, no scheme, no tag)"
        )
    if not is_registry_host(r.partition("/")[0]):
        raise ConfigurationError(
            f"image registry {registry!r} does not start with a registry host: from Kubernetes 1.34.1 OKE's CRI-O "
            "pulls only fully qualified image names, so give the host too, like 'iad.ocir.io/mytenancy' "
            "or 'docker.io/myorg'"
        )
    return r


def is_registry_host(component: str) -> bool:
    """True for an image name's first component that names a registry (``quay.io``, ``host:5000``, ``localhost``)."""
    return "." in component or ":" in component or component == "localhost"


def qualified(image: str) -> bool:
    """True when an image reference starts with a registry host (``quay.io/calico/node:v3.31.5``)."""
    first, sep, _ = image.partition("/")
    return bool(sep) and is_registry_host(first)


def rewrite_image(image: str, registry: str) -> str:
    """``quay.io/calico/node:v3.32.0`` -> ``<registry>/calico/node:v3.32.0``; already rewritten stays."""
    reg = registry.rstrip("/")
    if image.startswith(reg + "/"):
        return image
    if qualified(image):
        image = image.partition("/")[2]
    return f"{reg}/{image}"


def _template_pod(obj: K8sObject) -> dict[str, Any] | None:
    """An object's pod template spec, or None for objects without one."""
    spec = obj.get("spec")
    template = spec.get("template") if isinstance(spec, dict) else None
    pod = template.get("spec") if isinstance(template, dict) else None
    return pod if isinstance(pod, dict) else None


def _fields_and_containers(obj: K8sObject) -> list[tuple[str, dict[str, Any]]]:
    """Each init container and container of an object's pod template, with the field that lists it."""
    pod = _template_pod(obj) or {}
    return [(key, c) for key in ("initContainers", "containers") for c in pod.get(key) or [] if isinstance(c, dict)]


def _containers(obj: K8sObject) -> list[dict[str, Any]]:
    """The containers and init containers of an object's pod template (none for objects without one)."""
    return [c for _, c in _fields_and_containers(obj)]


def require_qualified_images(manifest: Manifest, version: str = "unknown") -> Manifest:
    """Every image starts with a registry host (OKE's CRI-O from Kubernetes 1.34.1 pulls nothing else); returns the
    manifest unchanged, or raises ManifestShapeError naming the first object, container and image that does not."""
    for obj in manifest:
        for key, c in _fields_and_containers(obj):
            image = c.get("image")
            if not isinstance(image, str) or not qualified(image):
                raise shape_error(version, describe(obj), f"{key}[{c.get('name')}].image",
                                  f"is {image!r}, not a fully qualified name (registry host first), which OKE's CRI-O "
                                  "needs")
    return manifest


def rewrite_images(manifest: Manifest, registry: str) -> Manifest:
    """Opt-in: point every container and init container image at a registry mirror (e.g. OCIR)."""
    reg = validate_registry(registry)
    out: Manifest = []
    for obj in manifest:
        if not _containers(obj):
            out.append(obj)
            continue
        new = copy.deepcopy(obj)
        for c in _containers(new):
            if isinstance(c.get("image"), str):
                c["image"] = rewrite_image(c["image"], reg)
        out.append(new)
    return out


def registry_warning(registry: str, example_image: str) -> str | None:
    """A warning when ``registry`` ends with ``/calico``, or None. ``image_registry`` is what goes before
    ``calico/<image>``, so such a value doubles it (``.../calico/calico/node:v3.32.0``), rarely where the images were
    mirrored; the warning shows ``example_image`` (an upstream reference) as it would become, and the value to use."""
    reg = registry.strip().rstrip("/")
    parent, slash, last = reg.rpartition("/")
    if not slash or last != "calico":
        return None
    produced = rewrite_image(example_image, reg)
    repository = produced[len(reg) + 1:].partition("@")[0]  # calico/node:v3.32.0, without a digest
    name = repository.rpartition("/")[2].partition(":")[0]  # node
    return (f"image_registry {registry!r} ends with /calico: images become {produced}; if you mirrored to "
            f"{reg}/{name}, set image_registry to {parent}")
