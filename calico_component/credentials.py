"""Keep credentials out of messages: URL redaction, kubeconfig checks whose errors never quote the file."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable
from typing import Any

import yaml

from .errors import ConfigurationError

#: Environment variable holding the ``Authorization`` header value for a private mirror
#: (``Bearer <token>`` or ``Basic <base64 of user:password>``). It is sent to the mirror's own
#: URLs only, never to upstream and never along a redirect.
MIRROR_AUTHORIZATION_ENV = "CALICO_OKE_MIRROR_AUTHORIZATION"

REDACTED = "***"

# OCI Object Storage pre-authenticated requests carry their credential in the path: /p/<token>/n/...
_PAR_TOKEN_RE = re.compile(r"(/p/)[^/]+(/n/)")
# Values shorter than this are not worth redacting (and would blank out ordinary words).
_MIN_SECRET_LENGTH = 6


def has_userinfo(url: str) -> bool:
    """True when ``url`` carries ``user[:password]@`` before its host."""
    return "@" in urllib.parse.urlsplit(url).netloc


def redact_url(url: str) -> str:
    """``url`` safe to show: no user-info, no query values, no pre-authenticated-request token."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rsplit('@', 1)[1]}"
    query = "&".join(
        f"{key}={REDACTED}" if sep else key
        for key, sep, _ in (item.partition("=") for item in parts.query.split("&") if item)
    )
    path = _PAR_TOKEN_RE.sub(rf"\g<1>{REDACTED}\g<2>", parts.path)
    return urllib.parse.urlunsplit((parts.scheme, netloc, path, query, parts.fragment))


def refuse_userinfo(url: str, label: str) -> None:
    """Raise ConfigurationError when ``url`` embeds credentials; the message shows the URL redacted."""
    if has_userinfo(url):
        raise ConfigurationError(
            f"{label} {redact_url(url)} carries credentials in the URL (user-info before '@'); URLs end up in "
            "config files, logs and error messages, so they are refused. Remove them from the URL and put the "
            f"Authorization header value in the environment instead: {MIRROR_AUTHORIZATION_ENV}='Bearer <token>' "
            "(or 'Basic <base64 of user:password>'), which is sent to that mirror only"
        )


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def secret_values(kubeconfig: str) -> set[str]:
    """Every string under ``users`` of a kubeconfig (tokens, passwords, keys, exec env): what must never be shown.

    A kubeconfig that does not parse yields no values; callers then must not quote it at all.
    """
    try:
        doc = yaml.safe_load(kubeconfig)
    except yaml.YAMLError:
        return set()
    users = doc.get("users") if isinstance(doc, dict) else None
    return {s for s in _strings(users) if len(s) >= _MIN_SECRET_LENGTH}


def scrub(message: str, secrets: Iterable[str]) -> str:
    """``message`` with every secret value replaced by ``***``."""
    for secret in sorted(secrets, key=len, reverse=True):
        message = message.replace(secret, REDACTED)
    return message


def _yaml_position(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{problem or 'invalid YAML'}{where}"


def load_kubeconfig(kubeconfig: str, label: str = "kubeconfig") -> dict[str, Any]:
    """Parse kubeconfig contents, or raise ConfigurationError that names the problem without quoting the file.

    PyYAML's own messages quote the offending line, which in a kubeconfig is often a token:
    only the problem and its position are kept.
    """
    if not isinstance(kubeconfig, str) or not kubeconfig.strip():
        raise ConfigurationError(f"{label} is empty; pass the contents of a kubeconfig file (not its path)")
    try:
        doc = yaml.safe_load(kubeconfig)
    except yaml.YAMLError as exc:
        # Not chained on purpose: the YAMLError's text quotes the line, and a chained cause is printed too.
        raise ConfigurationError(
            f"{label} is not valid YAML ({_yaml_position(exc)}); pass the contents of a kubeconfig file "
            "(e.g. from `oci ce cluster create-kubeconfig`), or leave kubeconfig out and pass cluster_id"
        ) from None
    if not isinstance(doc, dict):
        raise ConfigurationError(
            f"{label} is a YAML {type(doc).__name__}, not a kubeconfig mapping; pass the contents of a kubeconfig "
            "file, not its path"
        )
    for key in ("clusters", "contexts"):
        if not isinstance(doc.get(key), list) or not doc[key]:
            raise ConfigurationError(
                f"{label} has no '{key}' list; a kubeconfig needs at least clusters and contexts "
                "(check that the whole file was passed)"
            )
    return doc
