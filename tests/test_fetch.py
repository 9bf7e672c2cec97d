"""Downloads over real HTTPS from 127.0.0.1: success, errors, timeouts, retries, digests and the cache."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from calico_component import ChecksumMismatchError, FetchOptions, ManifestFetchError
from calico_component.errors import ConfigurationError, UnsupportedVersionError
from calico_component.manifest.fetch import fetch_manifest
from calico_component.manifest.releases import get_release, resolve_manifest
from calico_component.manifest.render import render
from tests.conftest import upstream_bytes
from tests.https_server import Behaviour, ManifestServer

V, F = "3.28.0", "calico-policy-only.yaml"


def _opts(server: ManifestServer, cache_dir: Path, **kw: object) -> FetchOptions:
    base: dict[str, object] = dict(mirror=server.base_url, cache_dir=cache_dir, ssl_context=server.client_context,
                                   timeout=5.0, retries=2, backoff=0.05)
    base.update(kw)
    return FetchOptions(**base)  # type: ignore[arg-type]


def test_download_success_verifies_pinned_digest(https_server: ManifestServer, cache_dir: Path) -> None:
    """A known version downloads over HTTPS and its bytes match the pinned SHA-256 from SHA256SUMS."""
    ref = resolve_manifest(V, "vcn-native")
    got = fetch_manifest(ref, _opts(https_server, cache_dir))
    assert got.data == upstream_bytes(V, F)
    assert got.sha256 == "c7e45c51b9b484d2e9af6891fe37724dc6f22d31a86597d756be89e85bd60c84"
    assert not got.from_cache
    assert https_server.requests[https_server.path(V, F)] == 1


def test_cache_reused_without_second_request(https_server: ManifestServer, cache_dir: Path) -> None:
    """A second fetch is served from the digest-keyed cache and makes no HTTP request."""
    ref = resolve_manifest(V, "vcn-native")
    fetch_manifest(ref, _opts(https_server, cache_dir))
    again = fetch_manifest(ref, _opts(https_server, cache_dir))
    assert again.from_cache and again.data == upstream_bytes(V, F)
    assert https_server.requests[https_server.path(V, F)] == 1
    assert (cache_dir / f"{ref.sha256}.yaml").is_file()


def test_tampered_cache_entry_is_never_served(https_server: ManifestServer, cache_dir: Path) -> None:
    """A cache entry whose bytes no longer match its digest is discarded and fetched again."""
    ref = resolve_manifest(V, "vcn-native")
    fetch_manifest(ref, _opts(https_server, cache_dir))
    entry = cache_dir / f"{ref.sha256}.yaml"
    entry.write_bytes(b"kind: Evil\n")
    got = fetch_manifest(ref, _opts(https_server, cache_dir))
    assert got.data == upstream_bytes(V, F) and not got.from_cache
    assert https_server.requests[https_server.path(V, F)] == 2


def test_404_is_a_clear_fetch_error_without_retries(https_server: ManifestServer, cache_dir: Path) -> None:
    """An HTTP 404 fails at once with the URL and status in the message."""
    ref = resolve_manifest("9.9.9", "vcn-native", sha256="0" * 64)
    with pytest.raises(ManifestFetchError, match=r"HTTP 404.*") as info:
        fetch_manifest(ref, _opts(https_server, cache_dir))
    assert "v9.9.9/calico-policy-only.yaml" in str(info.value)
    assert https_server.requests[https_server.path("9.9.9", F)] == 1


def test_slow_server_hits_timeout(https_server: ManifestServer, cache_dir: Path) -> None:
    """A server slower than the timeout fails with a fetch error after the bounded retries."""
    https_server.behaviours[https_server.path(V, F)] = Behaviour(delay=1.5)
    ref = resolve_manifest(V, "vcn-native")
    with pytest.raises(ManifestFetchError, match="after 2 attempt"):
        fetch_manifest(ref, _opts(https_server, cache_dir, timeout=0.5, retries=1))
    assert https_server.requests[https_server.path(V, F)] == 2


def test_corrupted_body_is_a_checksum_mismatch(https_server: ManifestServer, cache_dir: Path) -> None:
    """A body that differs from the pin raises ChecksumMismatchError naming both digests and the URL, and is not cached."""
    https_server.behaviours[https_server.path(V, F)] = Behaviour(corrupt=True)
    ref = resolve_manifest(V, "vcn-native")
    with pytest.raises(ChecksumMismatchError) as info:
        fetch_manifest(ref, _opts(https_server, cache_dir))
    msg = str(info.value)
    corrupted = upstream_bytes(V, F).replace(b"calico", b"calicX", 1)
    assert ref.sha256 in msg and hashlib.sha256(corrupted).hexdigest() in msg
    assert https_server.url(V, F) in msg
    assert not cache_dir.exists() or not any(cache_dir.iterdir())


def test_transient_503_is_retried(https_server: ManifestServer, cache_dir: Path) -> None:
    """A 503 followed by success is retried with backoff and succeeds."""
    https_server.behaviours[https_server.path(V, F)] = Behaviour(fail_times=2, fail_status=503)
    got = fetch_manifest(resolve_manifest(V, "vcn-native"), _opts(https_server, cache_dir))
    assert got.data == upstream_bytes(V, F)
    assert https_server.requests[https_server.path(V, F)] == 3


def test_persistent_503_gives_up_after_bounded_retries(https_server: ManifestServer, cache_dir: Path) -> None:
    """Retries are bounded: a server that keeps failing yields an error after retries+1 attempts."""
    https_server.behaviours[https_server.path(V, F)] = Behaviour(fail_times=100, fail_status=503)
    with pytest.raises(ManifestFetchError, match="after 3 attempt"):
        fetch_manifest(resolve_manifest(V, "vcn-native"), _opts(https_server, cache_dir))
    assert https_server.requests[https_server.path(V, F)] == 3


def test_untrusted_certificate_is_refused(https_server: ManifestServer, cache_dir: Path) -> None:
    """A server whose certificate is not trusted is refused rather than read."""
    with pytest.raises(ManifestFetchError, match="certificate"):
        fetch_manifest(resolve_manifest(V, "vcn-native"), _opts(https_server, cache_dir, ssl_context=None))


def test_plain_http_is_refused() -> None:
    """Manifests are fetched over HTTPS only: an http:// mirror or manifest URL is a configuration error."""
    with pytest.raises(ConfigurationError, match="HTTPS only"):
        FetchOptions(mirror="http://127.0.0.1:1/")
    with pytest.raises(ConfigurationError, match="HTTPS only"):
        FetchOptions(manifest="http://example.invalid/calico.yaml")


def test_offline_uses_cache_or_fails_clearly(https_server: ManifestServer, cache_dir: Path) -> None:
    """Offline mode serves from the cache, and without a cached copy says how to get one."""
    ref = resolve_manifest(V, "vcn-native")
    with pytest.raises(ManifestFetchError, match="offline mode"):
        fetch_manifest(ref, FetchOptions(offline=True, cache_dir=cache_dir))
    fetch_manifest(ref, _opts(https_server, cache_dir))
    got = fetch_manifest(ref, FetchOptions(offline=True, cache_dir=cache_dir))
    assert got.from_cache and got.data == upstream_bytes(V, F)


def test_offline_with_directory_mirror(mirror: Path, cache_dir: Path) -> None:
    """Offline mode with a mirror directory renders without any network."""
    result = render(V, "vcn-native", "oracle-linux-8",
                    fetch_options=FetchOptions(mirror=str(mirror), offline=True, cache_dir=cache_dir))
    assert result.manifest_sha256 == get_release(V).sha256("calico-policy-only.yaml")
    assert len(result.objects) == 34


def test_unknown_version_needs_explicit_digest() -> None:
    """A version outside the table is refused unless the user gives its digest."""
    with pytest.raises(UnsupportedVersionError, match=r"3\.31\.0.*sha256"):
        resolve_manifest("3.31.0", "vcn-native")
    ref = resolve_manifest("3.31.0", "vcn-native", sha256="A" * 64)
    assert ref.sha256 == "a" * 64 and not ref.pinned


def test_user_digest_overrides_pin(tmp_path: Path) -> None:
    """A user-supplied digest is what the file is checked against, even for a known version."""
    edited = upstream_bytes(V, F) + b"\n# local note\n"
    path = tmp_path / "calico-policy-only.yaml"
    path.write_bytes(edited)
    with pytest.raises(ChecksumMismatchError):
        render(V, "vcn-native", "oracle-linux-7", fetch_options=FetchOptions(manifest=str(path)))
    result = render(V, "vcn-native", "oracle-linux-7", manifest_sha256=hashlib.sha256(edited).hexdigest(),
                    fetch_options=FetchOptions(manifest=str(path)))
    assert result.manifest_sha256 == hashlib.sha256(edited).hexdigest()


def test_manifest_url_override(https_server: ManifestServer, cache_dir: Path) -> None:
    """--manifest with an https URL fetches that one file and still verifies the pin."""
    opts = _opts(https_server, cache_dir, mirror=None, manifest=https_server.url(V, F))
    result = render(V, "vcn-native", "oracle-linux-8", fetch_options=opts)
    assert result.source == https_server.url(V, F)
    assert len(result.objects) == 34


def test_missing_mirror_directory_is_clear(tmp_path: Path) -> None:
    """A mirror directory that does not exist is named in the error."""
    with pytest.raises(ManifestFetchError, match=r"mirror directory .*does not exist"):
        render(V, "vcn-native", "oracle-linux-8", fetch_options=FetchOptions(mirror=str(tmp_path / "nope")))


def test_mirror_authorization_header_from_environment(https_server: ManifestServer, cache_dir: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """$CALICO_OKE_MIRROR_AUTHORIZATION is sent to the mirror as the Authorization header."""
    monkeypatch.setenv("CALICO_OKE_MIRROR_AUTHORIZATION", "Bearer mirror-token-123")
    got = fetch_manifest(resolve_manifest(V, "vcn-native"), _opts(https_server, cache_dir))
    assert got.data == upstream_bytes(V, F)
    assert https_server.authorization[https_server.path(V, F)] == ["Bearer mirror-token-123"]


def test_mirror_authorization_not_forwarded_on_redirect(https_server: ManifestServer, cache_dir: Path) -> None:
    """A redirect (possibly to another host) never carries the mirror's Authorization header."""
    moved = "/moved/v3.28.0/calico-policy-only.yaml"
    https_server.behaviours[https_server.path(V, F)] = Behaviour(redirect=https_server.base_url + moved)
    opts = _opts(https_server, cache_dir, authorization="Bearer mirror-token-123")
    with pytest.raises(ManifestFetchError, match="HTTP 404"):
        fetch_manifest(resolve_manifest(V, "vcn-native"), opts)
    assert https_server.authorization[https_server.path(V, F)] == ["Bearer mirror-token-123"]
    assert https_server.authorization[moved] == [None]
