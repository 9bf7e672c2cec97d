"""Fetch a Calico manifest over HTTPS (or from a mirror / local file) and verify its SHA-256.

Sources, in order: a single override (``manifest``: local file or https URL), else a
mirror (directory or https base URL laid out as ``v<VERSION>/<file>``), else upstream.
Every download goes through an on-disk cache keyed by the expected digest; a cached file
is re-hashed on every read, so the cache can never hand out unverified bytes. URLs with
credentials in their user-info are refused; every URL shown in a message is redacted.
"""

from __future__ import annotations

import hashlib
import os
import ssl
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from ..credentials import MIRROR_AUTHORIZATION_ENV, redact_url, refuse_userinfo
from ..errors import ChecksumMismatchError, ConfigurationError, ManifestFetchError
from .releases import ManifestRef

ProgressCallback = Callable[[int, "int | None"], None]

#: A default mirror for every render, for air-gapped machines (and tests): set it once.
MIRROR_ENV = "CALICO_OKE_MANIFEST_MIRROR"
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
_RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_USER_AGENT = "calico-oke (+manifest fetcher)"


def default_cache_dir() -> Path:
    """``$CALICO_OKE_CACHE_DIR``, else ``$XDG_CACHE_HOME/calico-oke/manifests``, else ``~/.cache/...``."""
    explicit = os.environ.get("CALICO_OKE_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "calico-oke" / "manifests"


@dataclass(frozen=True)
class FetchOptions:
    """Where to get manifests from and how hard to try."""

    mirror: str | None = None
    manifest: str | None = None
    offline: bool = False
    use_cache: bool = True
    cache_dir: Path | None = None
    timeout: float = 30.0
    retries: int = 3
    backoff: float = 0.5
    ssl_context: ssl.SSLContext | None = None
    progress: ProgressCallback | None = None
    #: Authorization header value for the mirror / manifest URL (default: $CALICO_OKE_MIRROR_AUTHORIZATION).
    #: Never sent to upstream, never along a redirect, never shown (excluded from repr).
    authorization: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            raise ConfigurationError(f"timeout must be positive seconds, got {self.timeout!r}")
        if self.retries < 0:
            raise ConfigurationError(f"retries must be 0 or more, got {self.retries!r}")
        for label, value in (("mirror", self.mirror), ("manifest", self.manifest)):
            if value is not None and _is_url(value):
                refuse_userinfo(value, label)
                _require_https(value, label)

    @property
    def resolved_cache_dir(self) -> Path:
        return self.cache_dir if self.cache_dir is not None else default_cache_dir()


@dataclass(frozen=True)
class Fetched:
    """Verified manifest bytes and where they came from."""

    data: bytes
    sha256: str
    source: str
    from_cache: bool


def _is_url(value: str) -> bool:
    return "://" in value


def _require_https(url: str, label: str) -> None:
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme == "file":
        return
    if scheme != "https":
        raise ConfigurationError(
            f"{label} {redact_url(url)!r} is not an https:// URL; manifests are fetched over HTTPS only "
            "(use a local directory or file path for offline copies)"
        )


def _local_path(value: str) -> Path:
    if value.startswith("file://"):
        return Path(urllib.parse.unquote(urllib.parse.urlsplit(value).path))
    return Path(value).expanduser()


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def verify(data: bytes, expected: str, source: str) -> str:
    """Return the digest if it matches ``expected``; else raise ChecksumMismatchError naming both."""
    actual = sha256_hex(data)
    if actual != expected:
        raise ChecksumMismatchError(
            f"SHA-256 mismatch for {source}: expected {expected}, got {actual}. The file is not the one pinned "
            "for this release; it was not used. If you changed it on purpose, pass its digest explicitly "
            "(--sha256 / manifest_sha256)."
        )
    return actual


class _HTTPSOnlyRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(
        self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str, headers: Any, newurl: str
    ) -> urllib.request.Request | None:
        if urllib.parse.urlsplit(newurl).scheme.lower() != "https":
            raise ManifestFetchError(
                f"{redact_url(req.full_url)} redirected to non-HTTPS {redact_url(newurl)}; refusing to follow"
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _download_once(url: str, options: FetchOptions, authorization: str | None) -> bytes:
    context = options.ssl_context or ssl.create_default_context()
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), _HTTPSOnlyRedirects())
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    if authorization:
        # Unredirected: urllib copies ordinary headers onto a redirect, which may point at another host.
        request.add_unredirected_header("Authorization", authorization)
    deadline = time.monotonic() + options.timeout
    shown = redact_url(url)
    with opener.open(request, timeout=options.timeout) as response:
        length_header = response.headers.get("Content-Length")
        total = int(length_header) if length_header and length_header.isdigit() else None
        if total is not None and total > MAX_MANIFEST_BYTES:
            raise ManifestFetchError(f"{shown} is {total} bytes, more than the {MAX_MANIFEST_BYTES} a manifest may be")
        chunks: list[bytes] = []
        received = 0
        while True:
            chunk = response.read(65536)
            if not chunk:
                break
            chunks.append(chunk)
            received += len(chunk)
            if received > MAX_MANIFEST_BYTES:
                raise ManifestFetchError(f"{shown} sent more than {MAX_MANIFEST_BYTES} bytes; not a manifest")
            if options.progress:
                options.progress(received, total)
            if time.monotonic() > deadline:
                raise TimeoutError(f"download took longer than {options.timeout:g}s")
        if total is not None and received != total:
            raise ConnectionError(f"connection closed after {received} of {total} bytes")
        return b"".join(chunks)


def download(url: str, options: FetchOptions, authorization: str | None = None) -> bytes:
    """GET an https URL with a timeout and bounded retries (exponential backoff) on transient failures."""
    refuse_userinfo(url, "URL")
    _require_https(url, "URL")
    shown = redact_url(url)
    attempts = options.retries + 1
    last: Exception | None = None
    for attempt in range(attempts):
        if attempt:
            time.sleep(options.backoff * (2 ** (attempt - 1)))
        try:
            return _download_once(url, options, authorization)
        except urllib.error.HTTPError as exc:
            last = exc
            if exc.code not in _RETRYABLE_STATUS:
                hint = " (no such version or file upstream?)" if exc.code == 404 else ""
                raise ManifestFetchError(f"GET {shown} failed: HTTP {exc.code} {exc.reason}{hint}") from exc
        except ManifestFetchError:
            raise
        except (urllib.error.URLError, TimeoutError, ConnectionError, ssl.SSLError, OSError) as exc:
            if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, ssl.SSLCertVerificationError):
                raise ManifestFetchError(f"GET {shown} failed: TLS certificate not trusted ({exc.reason})") from exc
            last = exc
    reason = last.reason if isinstance(last, urllib.error.URLError) else last
    raise ManifestFetchError(
        f"GET {shown} failed after {attempts} attempt(s): {reason}. Check network access, or use a mirror "
        "(--mirror DIR_OR_URL) or --offline with a cached copy."
    ) from last


def _cache_path(options: FetchOptions, digest: str) -> Path:
    return options.resolved_cache_dir / f"{digest}.yaml"


def _read_cache(options: FetchOptions, digest: str) -> bytes | None:
    if not options.use_cache:
        return None
    path = _cache_path(options, digest)
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if sha256_hex(data) != digest:
        # A corrupted or tampered entry is never served; drop it and fetch again.
        try:
            path.unlink()
        except OSError:
            pass
        return None
    return data


def _write_cache(options: FetchOptions, digest: str, data: bytes) -> None:
    if not options.use_cache:
        return
    directory = options.resolved_cache_dir
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".partial-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, _cache_path(options, digest))
    except OSError:
        pass  # a read-only cache dir must not break a render


def _fetch_url(
    url: str, digest: str, options: FetchOptions, *, allowed_offline: bool, authorization: str | None = None
) -> Fetched:
    shown = redact_url(url)
    cached = _read_cache(options, digest)
    if cached is not None:
        return Fetched(cached, digest, shown, from_cache=True)
    if options.offline and not allowed_offline:
        raise ManifestFetchError(
            f"offline mode: {shown} is not in the cache ({options.resolved_cache_dir}); "
            "run once online, or pass --mirror with a local copy"
        )
    data = download(url, options, authorization)
    verify(data, digest, shown)
    _write_cache(options, digest, data)
    return Fetched(data, digest, shown, from_cache=False)


def _fetch_file(path: Path, digest: str) -> Fetched:
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ManifestFetchError(f"manifest file {path} does not exist") from exc
    except OSError as exc:
        raise ManifestFetchError(f"cannot read manifest file {path}: {exc.strerror}") from exc
    verify(data, digest, str(path))
    return Fetched(data, digest, str(path), from_cache=False)


def fetch_manifest(ref: ManifestRef, options: FetchOptions | None = None) -> Fetched:
    """Return the verified bytes of ``ref`` from the override, the mirror, the cache or upstream."""
    opts = options or FetchOptions()
    if opts.mirror is None and opts.manifest is None and os.environ.get(MIRROR_ENV):
        opts = replace(opts, mirror=os.environ[MIRROR_ENV])  # FetchOptions checks it like an explicit mirror
    authorization = opts.authorization or os.environ.get(MIRROR_AUTHORIZATION_ENV) or None
    if opts.manifest is not None:
        if _is_url(opts.manifest) and not opts.manifest.startswith("file://"):
            return _fetch_url(opts.manifest, ref.sha256, opts, allowed_offline=False, authorization=authorization)
        return _fetch_file(_local_path(opts.manifest), ref.sha256)
    if opts.mirror is not None:
        relative = f"v{ref.version}/{ref.file}"
        if _is_url(opts.mirror) and not opts.mirror.startswith("file://"):
            return _fetch_url(f"{opts.mirror.rstrip('/')}/{relative}", ref.sha256, opts, allowed_offline=True,
                              authorization=authorization)
        root = _local_path(opts.mirror)
        if not root.is_dir():
            raise ManifestFetchError(f"mirror directory {root} does not exist; expected a tree laid out as v<VERSION>/<file>")
        return _fetch_file(root / relative, ref.sha256)
    return _fetch_url(ref.url, ref.sha256, opts, allowed_offline=False)
