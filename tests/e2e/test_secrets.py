"""No cluster credential in plaintext: every file of the state backend, preview --diff and engine output are scanned."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulumi
import pytest

from calico_component import Calico, CalicoArgs
from calico_component.local.controlplane import ControlPlane
from tests.e2e.conftest import StackFactory, mirror
from tests.e2e.engine import backend_dir, plaintext_leaks

# How users pass kubeconfigs: a plain string read from a file, an Output that is not secret (what OKE's
# get_cluster_kube_config_output(...).content is), and a secret (pulumi.Config().get_secret).
FORMS: dict[str, Callable[[str], pulumi.Input[str]]] = {
    "plain": lambda text: text,
    "output": lambda text: pulumi.Output.from_input(text),
    "secret": lambda text: pulumi.Output.secret(text),
}


def program(kubeconfig: str, network_type: str, version: str, form: str) -> Any:
    def run() -> None:
        Calico("calico", CalicoArgs(calico_version=version, network_type=network_type, node_os="oracle-linux-8",
                                    kubeconfig=FORMS[form](kubeconfig), manifest_mirror=mirror(), skip_await=True,
                                    disable_flannel_addon=False))
    return run


@pytest.mark.parametrize("network_type, forms", [
    ("flannel-overlay", ("plain", "output", "secret")),
    ("vcn-native", ("output", "secret", "plain")),
])
def test_token_never_in_plaintext(network_type: str, forms: tuple[str, str, str], control_plane: ControlPlane,
                                  make_stack: StackFactory, pulumi_env: dict[str, str]) -> None:
    """After up, an upgrade and a refresh (each with another kubeconfig form) the bearer token is only ciphertext."""
    token, project = control_plane.token, f"calico-e2e-secrets-{network_type}"
    printed: list[str] = []

    stack = make_stack(project, program(control_plane.kubeconfig, network_type, "3.31.5", forms[0]))
    stack.preview(diff=True, on_output=printed.append)
    assert stack.up(on_output=printed.append).summary.result == "succeeded"
    assert plaintext_leaks(pulumi_env, token) == [], f"{forms[0]} kubeconfig in plaintext after up"

    stack = make_stack(project, program(control_plane.kubeconfig, network_type, "3.32.0", forms[1]))
    stack.preview(diff=True, on_output=printed.append)
    assert stack.up(on_output=printed.append).summary.result == "succeeded"
    assert plaintext_leaks(pulumi_env, token) == [], f"{forms[1]} kubeconfig in plaintext after the upgrade"

    stack = make_stack(project, program(control_plane.kubeconfig, network_type, "3.32.0", forms[2]))
    stack.refresh(on_output=printed.append)
    stack.preview(diff=True, refresh=True, on_output=printed.append)
    assert plaintext_leaks(pulumi_env, token) == [], f"{forms[2]} kubeconfig in plaintext after refresh"

    state = "\n".join(p.read_text(errors="replace") for p in backend_dir(pulumi_env).rglob("*.json"))
    assert "ciphertext" in state, "the kubeconfig should be stored, encrypted"
    output = "".join(printed)
    assert "calico-k8s" in output and token not in output, "preview --diff or engine output shows the token"
