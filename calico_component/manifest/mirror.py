"""Fill a manifest mirror: the upstream files a release and network type need, verified, and the images they use."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import CalicoError
from .fetch import FetchOptions, fetch_manifest
from .images import rewrite_image, validate_registry
from .parsing import Manifest
from .releases import TYPHA_MANIFEST, ManifestFile, manifest_file, resolve_manifest, validate_network_type
from .render import render

#: render() needs a node OS; neither the files nor the images depend on it (it only sets FELIX_IPTABLESBACKEND).
_ANY_NODE_OS = "oracle-linux-8"


@dataclass(frozen=True)
class MirroredFile:
    """One file written into the mirror: where, and the pinned digest it was verified against."""

    path: Path
    sha256: str


@dataclass(frozen=True)
class Mirrored:
    """What ``mirror`` wrote, and the upstream image references the rendered manifests use (sorted, unique)."""

    calico_version: str
    files: tuple[MirroredFile, ...]
    images: tuple[str, ...]
    image_registry: str | None = None

    def lines(self) -> list[str]:
        """One line per image: its upstream reference; with a registry ``SOURCE TARGET``, the upstream reference and
        the one the rendered manifest uses (``skopeo copy docker://SOURCE docker://TARGET``)."""
        if self.image_registry is None:
            return list(self.images)
        return [f"{image} {rewrite_image(image, self.image_registry)}" for image in self.images]


def mirror_files(network_type: str, *, typha: bool = False) -> tuple[ManifestFile, ...]:
    """The files a mirror needs: the one render() takes for the network type; flannel-overlay with Typha needs
    calico-typha.yaml too, and keeps calico.yaml (``typha='auto'`` picks either by the node count)."""
    nt = validate_network_type(network_type)
    main = manifest_file(nt)
    return (main, manifest_file(nt, typha=True)) if typha else (main,)


def relative_path(calico_version: str, file: str) -> str:
    """Where a mirror holds a file: ``v<VERSION>/<file>``, the layout ``manifest_mirror`` and ``--mirror`` read."""
    return f"v{calico_version}/{file}"


def manifest_images(objects: Manifest) -> list[str]:
    """Every container and init container image of the objects' pod templates, sorted and unique."""
    found: set[str] = set()
    for obj in objects:
        spec = obj.get("spec")
        template = spec.get("template") if isinstance(spec, dict) else None
        pod = template.get("spec") if isinstance(template, dict) else None
        if not isinstance(pod, dict):
            continue
        for key in ("initContainers", "containers"):
            found.update(c["image"] for c in pod.get(key) or [] if isinstance(c, dict) and isinstance(c.get("image"), str))
    return sorted(found)


def _write(path: Path, data: bytes) -> None:
    """Write ``data`` at ``path`` whole or not at all (a temporary file beside it, then renamed)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".partial-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chmod(tmp, 0o644)  # a mirror is served or shared: readable by all, as a downloaded file would be
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise CalicoError(f"cannot write {path}: {exc.strerror}; pick an output directory you can write to") from exc


def mirror(
    calico_version: str,
    network_type: str,
    output: Path,
    *,
    typha: bool = False,
    image_registry: str | None = None,
    fetch_options: FetchOptions | None = None,
) -> Mirrored:
    """Write the files of ``mirror_files`` into ``output`` as ``v<VERSION>/<file>``, each verified against its pinned
    SHA-256, and return the images their rendered manifests use. Everything is fetched, verified and rendered before
    the first file is written: a wrong digest (or any other failure) leaves ``output`` untouched."""
    registry = validate_registry(image_registry) if image_registry is not None else None
    images: set[str] = set()
    fetched: list[tuple[str, ManifestFile, bytes, str]] = []
    for file in mirror_files(network_type, typha=typha):
        with_typha = file == TYPHA_MANIFEST
        # The same path as a render (its checks, the pinned digest); its objects give the images.
        result = render(calico_version, network_type, _ANY_NODE_OS, typha=with_typha, fetch_options=fetch_options)
        images.update(manifest_images(result.objects))
        ref = resolve_manifest(result.calico_version, result.network_type, typha=with_typha)
        verified = fetch_manifest(ref, fetch_options)  # render's copy, from the cache or the mirror: verified again
        fetched.append((ref.version, file, verified.data, verified.sha256))
    written: list[MirroredFile] = []
    for version, file, data, digest in fetched:
        path = output / relative_path(version, file)
        _write(path, data)
        written.append(MirroredFile(path, digest))
    return Mirrored(fetched[0][0], tuple(written), tuple(sorted(images)), registry)

