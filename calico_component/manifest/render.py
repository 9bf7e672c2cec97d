"""render(): pick the release, fetch and verify its manifest, parse it, apply the documented edits."""

from __future__ import annotations

from dataclasses import dataclass

from .fetch import FetchOptions, fetch_manifest
from .parsing import Manifest, dump_manifest, parse_manifest
from .releases import NetworkType, NodeOS, resolve_manifest, validate_network_type, validate_node_os
from .transforms import TransformOptions, transform


@dataclass(frozen=True)
class RenderResult:
    """The transformed objects plus the provenance of the manifest they came from."""

    calico_version: str
    network_type: NetworkType
    node_os: NodeOS
    manifest_file: str
    manifest_url: str
    manifest_sha256: str
    source: str
    from_cache: bool
    objects: Manifest

    def to_yaml(self) -> str:
        """Multi-document YAML of the transformed objects."""
        return dump_manifest(self.objects)


def render(
    calico_version: str,
    network_type: str,
    node_os: str,
    *,
    manifest_sha256: str | None = None,
    image_registry: str | None = None,
    pod_cidr: str | None = None,
    typha_replicas: int | None = None,
    typha: bool = False,
    calico_node_max_unavailable: str | None = None,
    fetch_options: FetchOptions | None = None,
) -> RenderResult:
    """Produce the Calico objects Oracle's procedure would apply, as parsed Kubernetes objects.

    Every input is validated before anything is fetched. ``manifest_sha256``, when given,
    is the digest the file must have; otherwise the release table's pin is used, and a
    version outside the table is refused (UnsupportedVersionError). ``typha`` (flannel-overlay
    only) renders calico-typha.yaml instead of calico.yaml, with the same edits.
    """
    nt = validate_network_type(network_type)
    os_name = validate_node_os(node_os)
    ref = resolve_manifest(calico_version, nt, manifest_sha256, typha=typha)
    options = TransformOptions(
        network_type=nt, node_os=os_name, image_registry=image_registry, pod_cidr=pod_cidr,
        typha_replicas=typha_replicas, typha=typha, calico_node_max_unavailable=calico_node_max_unavailable,
        version=ref.version
    )
    fetched = fetch_manifest(ref, fetch_options)
    parsed = parse_manifest(fetched.data, source=f"Calico {ref.version} {ref.file} ({fetched.source})")
    objects = transform(parsed, options)
    return RenderResult(
        calico_version=ref.version,
        network_type=nt,
        node_os=os_name,
        manifest_file=ref.file,
        manifest_url=ref.url,
        manifest_sha256=fetched.sha256,
        source=fetched.source,
        from_cache=fetched.from_cache,
        objects=objects,
    )
