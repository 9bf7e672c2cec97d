"""Credentials never reach messages: URL redaction and refusal, kubeconfig errors that do not quote the file."""

from __future__ import annotations

import subprocess
import sys
import traceback

import pytest

from calico_component import FetchOptions
from calico_component.cluster import flannel
from calico_component.credentials import load_kubeconfig, redact_url, scrub, secret_values
from calico_component.errors import ConfigurationError, FlannelRemovalError
from calico_component.manifest.render import render
from tests.conftest import REPO, kubeconfig_text

#: No cluster here: the component's ownership check only records what it was asked (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("ownership_checks")

TOKEN = "s3cr3t-Bearer-Token-9f8e7d6c5b4a"


@pytest.mark.parametrize("url, shown, hidden", [
    ("https://alice:hunter22@mirror.example/calico", "https://***@mirror.example/calico", ["alice", "hunter22"]),
    ("https://tok3n-only@mirror.example:8443/c", "https://***@mirror.example:8443/c", ["tok3n-only"]),
    ("https://mirror.example/c?sig=abcdef123&expires=99", "https://mirror.example/c?sig=***&expires=***",
     ["abcdef123"]),
    ("https://objectstorage.us-ashburn-1.oraclecloud.com/p/Zk9parTOKEN123/n/ns/b/bucket/o/calico",
     "https://objectstorage.us-ashburn-1.oraclecloud.com/p/***/n/ns/b/bucket/o/calico", ["Zk9parTOKEN123"]),
    ("https://mirror.example/calico/v3.28.0/calico.yaml", "https://mirror.example/calico/v3.28.0/calico.yaml", []),
])
def test_redact_url(url: str, shown: str, hidden: list[str]) -> None:
    """User-info, query values and OCI pre-authenticated-request tokens are replaced; ordinary URLs are unchanged."""
    assert redact_url(url) == shown
    for secret in hidden:
        assert secret not in redact_url(url)


@pytest.mark.parametrize("field", ["mirror", "manifest"])
def test_userinfo_urls_are_refused_without_echoing_them(field: str) -> None:
    """A mirror or manifest URL with credentials is refused; the error shows it redacted and names the env var to use."""
    url = "https://alice:hunter22@mirror.example/calico"
    with pytest.raises(ConfigurationError) as info:
        FetchOptions(**{field: url})  # type: ignore[arg-type]
    message = str(info.value)
    assert "hunter22" not in message and "alice" not in message
    assert "https://***@mirror.example/calico" in message
    assert "CALICO_OKE_MIRROR_AUTHORIZATION" in message


def test_userinfo_mirror_from_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default mirror from CALICO_OKE_MANIFEST_MIRROR gets the same refusal, redacted."""
    monkeypatch.setenv("CALICO_OKE_MANIFEST_MIRROR", "https://bob:pa55word@mirror.example/c")
    with pytest.raises(ConfigurationError) as info:
        render("3.28.0", "vcn-native", "oracle-linux-8")
    assert "pa55word" not in str(info.value) and "***@mirror.example" in str(info.value)


def test_cli_refusal_is_one_redacted_line() -> None:
    """The CLI prints the refusal as its single error line, naming the flag, without the credential; a bad value is a
    usage error (exit 2)."""
    proc = subprocess.run(
        [sys.executable, "-m", "calico_component", "render", "--calico-version", "3.28.0", "--network-type",
         "vcn-native", "--node-os", "oracle-linux-8", "--mirror", "https://bob:pa55word@mirror.example/c"],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )
    assert proc.returncode == 2 and proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1
    assert proc.stderr.startswith("error: --mirror") and "pa55word" not in proc.stderr and "***@" in proc.stderr


def test_fetch_options_repr_hides_authorization() -> None:
    """The mirror Authorization header value never shows in a FetchOptions repr (logs, tracebacks)."""
    assert TOKEN not in repr(FetchOptions(authorization=f"Bearer {TOKEN}"))


@pytest.mark.parametrize("text, needle", [
    # A token line that breaks the YAML: PyYAML would quote it in its own message.
    (kubeconfig_text(token=TOKEN).replace(f"token: {TOKEN}", f"token: {TOKEN}: [oops"), "not valid YAML"),
    (f"users:\n- name: u\n  user: {{token: {TOKEN}\n", "not valid YAML"),
    (f"- {TOKEN}\n", "not a kubeconfig mapping"),
    (f"users:\n- name: u\n  user:\n    token: {TOKEN}\n", "no 'clusters' list"),
    ("", "is empty"),
])
def test_bad_kubeconfig_errors_never_quote_credentials(text: str, needle: str) -> None:
    """Malformed kubeconfigs are refused with the problem and its position, never a line of the file."""
    with pytest.raises(ConfigurationError) as info:
        load_kubeconfig(text)
    message = str(info.value)
    assert needle in message
    assert TOKEN not in message
    # Nor anywhere in the traceback Pulumi prints, chained causes included.
    assert TOKEN not in "".join(traceback.format_exception(info.value))


def test_yaml_error_names_the_position() -> None:
    """The YAML error keeps what helps: which line and column is wrong."""
    text = kubeconfig_text(token=TOKEN).replace(f"token: {TOKEN}", f"token: {TOKEN}: [oops")
    line = next(i for i, s in enumerate(text.splitlines(), 1) if TOKEN in s)
    with pytest.raises(ConfigurationError, match=rf"line {line}, column \d+"):
        load_kubeconfig(text)


def test_flannel_step_kubeconfig_errors_are_scrubbed() -> None:
    """The flannel step's kubeconfig errors (the Kubernetes client's) never contain the token."""
    broken = kubeconfig_text(token=TOKEN).replace(f"token: {TOKEN}", f"token: {TOKEN}: [oops")
    with pytest.raises(FlannelRemovalError) as info:
        flannel.present(broken, "kube-system", "kube-flannel-ds")
    assert TOKEN not in "".join(traceback.format_exception(info.value)) and "not valid YAML" in str(info.value)
    no_context = kubeconfig_text(token=TOKEN).replace("current-context: ctx\n", "current-context: missing\n")
    with pytest.raises(FlannelRemovalError) as info:
        flannel.present(no_context, "kube-system", "kube-flannel-ds")
    assert TOKEN not in "".join(traceback.format_exception(info.value))
    assert "kube-system/kube-flannel-ds" in str(info.value)


def test_secret_values_and_scrub() -> None:
    """Every credential under users is found, and scrub removes each from a message."""
    text = kubeconfig_text(token=TOKEN) + "  # trailing\n"
    found = secret_values(text)
    assert TOKEN in found
    assert scrub(f"bad token {TOKEN} here", found) == "bad token *** here"
    assert secret_values("{{{") == set()
