"""Manifest parsing: libyaml is used, and malformed bodies are refused clearly."""

from __future__ import annotations

import pytest

from calico_component import ManifestShapeError, parse_manifest
from calico_component.manifest.parsing import LIBYAML, dump_manifest
from tests.conftest import upstream_bytes, upstream_objects


def test_libyaml_loader_is_used() -> None:
    """The C loader is available here, so parsing takes the fast path."""
    assert LIBYAML


def test_round_trip_preserves_objects() -> None:
    """Dumping parsed objects and parsing again gives the same objects as upstream."""
    parsed = parse_manifest(upstream_bytes("3.30.0", "calico.yaml"))
    assert parse_manifest(dump_manifest(parsed)) == upstream_objects("3.30.0", "calico.yaml")


@pytest.mark.parametrize("body, needle", [
    ("", "no Kubernetes objects"),
    ("---\n---\n", "no Kubernetes objects"),
    ("a: [unclosed", "not valid YAML"),
    ("just a string", "expected a Kubernetes object"),
    ("apiVersion: v1\nkind: ConfigMap\n", "metadata.name"),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
     "appears twice"),
])
def test_bad_bodies(body: str, needle: str) -> None:
    """Empty, non-YAML, non-object and duplicate documents raise ManifestShapeError with a reason."""
    with pytest.raises(ManifestShapeError, match=needle):
        parse_manifest(body)
