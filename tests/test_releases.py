"""The release table: versions, URLs, pinned digests and Oracle's tested marks."""

from __future__ import annotations

import hashlib
import warnings

import pytest

from calico_component import RELEASES, SUPPORTED_VERSIONS, CompatibilityError, check_compatibility, get_release
from calico_component.releases import MANIFEST_FILES, UntestedCombinationWarning, manifest_url
from tests.conftest import mirror_path, upstream_bytes


def test_the_eight_versions_oracle_lists() -> None:
    """The table holds exactly the eight versions of Oracle's document, in order."""
    assert SUPPORTED_VERSIONS == ("3.25.1", "3.26.1", "3.26.4", "3.27.2", "3.28.0", "3.28.2", "3.29.2", "3.30.0")


def test_pins_match_the_upstream_files() -> None:
    """Each of the 24 pinned digests equals the SHA-256 of the upstream file and of SHA256SUMS."""
    sums_file = mirror_path() / "SHA256SUMS"
    listed = {}
    if sums_file.exists():
        for line in sums_file.read_text().splitlines():
            if line and not line.startswith("#"):
                digest, path = line.split()[:2]
                listed[path] = digest
    for v in SUPPORTED_VERSIONS:
        for f in MANIFEST_FILES:
            actual = hashlib.sha256(upstream_bytes(v, f)).hexdigest()
            assert get_release(v).sha256(f) == actual
            if listed:
                assert listed[f"v{v}/{f}"] == actual


def test_upstream_url_layout() -> None:
    """URLs follow raw.githubusercontent.com/projectcalico/calico/v<V>/manifests/<file>."""
    assert manifest_url("3.28.0", "calico-policy-only.yaml") == (
        "https://raw.githubusercontent.com/projectcalico/calico/v3.28.0/manifests/calico-policy-only.yaml")
    assert RELEASES["3.30.0"].manifest_url("calico.yaml").endswith("/v3.30.0/manifests/calico.yaml")


def test_tested_combination_is_silent() -> None:
    """A combination Oracle tested produces no warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_compatibility("3.28.0", "v1.30.10") is None


def test_untested_combination_warns_and_names_the_tested_one() -> None:
    """An untested combination warns, says the placement is inferred and suggests the tested release."""
    with pytest.warns(UntestedCombinationWarning, match="3.28.0 on Kubernetes 1.33.*inferred.*3.30.0 on 1.33"):
        check_compatibility("3.28.0", "v1.33.1")


def test_strict_check_raises() -> None:
    """Strict mode turns an untested combination into a CompatibilityError."""
    with pytest.raises(CompatibilityError, match="not tested on any"):
        check_compatibility("3.25.1", "1.31", strict=True)
