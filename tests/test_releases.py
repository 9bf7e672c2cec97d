"""The release table: versions, URLs, pinned digests and Oracle's tested marks."""

from __future__ import annotations

import hashlib
import warnings

import pytest

from calico_component import RELEASES, SUPPORTED_VERSIONS, CompatibilityError, check_compatibility, get_release
from calico_component.manifest.releases import MANIFEST_FILES, UntestedCombinationWarning, manifest_url
from tests.conftest import mirror_path, upstream_bytes


def test_the_versions_oracle_lists() -> None:
    """The table holds the eight rows of Oracle's original page, then the three of today's page, in order."""
    assert SUPPORTED_VERSIONS == ("3.25.1", "3.26.1", "3.26.4", "3.27.2", "3.28.0", "3.28.2", "3.29.2", "3.30.0",
                                  "3.30.3", "3.31.5", "3.32.0")


def test_pins_match_the_upstream_files() -> None:
    """Each of the 33 pinned digests equals the SHA-256 of the upstream file and of SHA256SUMS."""
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


@pytest.mark.parametrize(("version", "kubernetes"), [("3.28.0", "v1.30.10"), ("3.30.3", "v1.34.2"),
                                                     ("3.31.5", "v1.35.0"), ("3.32.0", "v1.36.1")])
def test_tested_combination_is_silent(version: str, kubernetes: str) -> None:
    """A combination Oracle tested produces no warning, and strict mode accepts it."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_compatibility(version, kubernetes) is None
        assert check_compatibility(version, kubernetes, strict=True) is None


def test_untested_combination_warns_and_names_the_tested_one() -> None:
    """An untested combination warns, says the placement is inferred and suggests the tested release."""
    with pytest.warns(UntestedCombinationWarning, match="3.28.0 on Kubernetes 1.33.*inferred.*3.30.0 on 1.33"):
        check_compatibility("3.28.0", "v1.33.1")


def test_old_rows_on_todays_kubernetes_warn_as_untested() -> None:
    """Every row of the original page is untested on 1.34-1.36; the message names today's tested release."""
    assert check_compatibility("3.32.0", "v1.36.3") is None  # the contrast: today's row for 1.36 is silent
    with pytest.warns(UntestedCombinationWarning, match=r"3\.30\.0 on Kubernetes 1\.36.*tested for 1\.36: 3\.32\.0"):
        check_compatibility("3.30.0", "v1.36.3")
    with pytest.raises(CompatibilityError, match=r"3\.29\.2 on Kubernetes 1\.34"):
        check_compatibility("3.29.2", "1.34", strict=True)


def test_printed_placements_are_not_labelled_inferred() -> None:
    """Today's page prints its cells: the new rows are tested, not inferred; the original page's are inferred."""
    with pytest.warns(UntestedCombinationWarning) as caught:
        check_compatibility("3.32.0", "v1.35.2")
    assert "tested on 1.36" in str(caught[0].message) and "inferred" not in str(caught[0].message)
    assert not RELEASES["3.32.0"].tested_is_inferred and RELEASES["3.30.0"].tested_is_inferred


def test_a_kubernetes_minor_outside_the_table() -> None:
    """A minor Oracle's table has no column for says so, and names the range it covers."""
    with pytest.warns(UntestedCombinationWarning, match=r"no column for Kubernetes 1\.37 \(it covers 1\.30 to 1\.36\)"):
        check_compatibility("3.32.0", "v1.37.0")


def test_strict_check_raises() -> None:
    """Strict mode turns an untested combination into a CompatibilityError."""
    with pytest.raises(CompatibilityError, match="not tested on any"):
        check_compatibility("3.25.1", "1.31", strict=True)
