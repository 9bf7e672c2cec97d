"""Every rendered object validates against the Kubernetes OpenAPI schemas of the versions OKE runs."""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate
import pytest

from calico_component import FetchOptions
from calico_component.manifest.releases import KUBERNETES_MINORS, SUPPORTED_VERSIONS
from calico_component.manifest.render import render
from tests.conftest import mirror_path


def _distinct_rendered_objects() -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for version in SUPPORTED_VERSIONS:
        for mode in ("flannel-overlay", "vcn-native"):
            # Oracle Linux 8 carries every edit (NFT included); OL7 differs only by omitting one env var.
            result = render(version, mode, "oracle-linux-8", fetch_options=FetchOptions(mirror=str(mirror_path())))
            for obj in result.objects:
                seen.setdefault(json.dumps(obj, sort_keys=True), dict(obj))
    return list(seen.values())


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    return _distinct_rendered_objects()


@pytest.mark.parametrize("k8s", KUBERNETES_MINORS)
def test_rendered_objects_validate(k8s: str, rendered: list[dict[str, Any]]) -> None:
    """Strict schema validation (unknown fields rejected) passes for all versions x modes on this Kubernetes minor."""
    failures = []
    for obj in rendered:
        try:
            kubernetes_validate.validate(obj, k8s, strict=True)
        except kubernetes_validate.ValidationError as exc:
            failures.append(f"{obj['kind']} {obj['metadata']['name']}: {exc.message}")
    assert not failures, "\n".join(failures[:20])
    assert len(rendered) > 100


def test_validator_rejects_a_broken_daemonset(rendered: list[dict[str, Any]]) -> None:
    """The validator really checks: a DaemonSet with a bad field type fails."""
    ds = json.loads(json.dumps(next(o for o in rendered if o["kind"] == "DaemonSet")))
    ds["spec"]["template"]["spec"]["containers"][0]["env"] = "not-a-list"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(ds, "1.33", strict=True)
