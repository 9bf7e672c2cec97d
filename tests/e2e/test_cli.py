"""The stack program the way users run it: the README's `pulumi` commands, the Python language host, 3 fake nodes."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from calico_component.local.controlplane import ControlPlane
from calico_component.local.nodes import run_fake_flannel, wait_for
from calico_component.local.program import copy_stack_program
from calico_component.local.workspace import PulumiCli, backend_dir, engine_env
from tests.conftest import REPO
from tests.e2e.cluster import (
    assert_installed,
    calico_node,
    calico_node_pods,
    crd_names,
    exists,
    flannel_present,
    live_uids,
)
from tests.e2e.conftest import mirror
from tests.e2e.engine import PREVIEW_REPLACEMENT, plaintext_leaks

README_MARKER = "<!-- cli-walkthrough"


def readme_commands() -> list[str]:
    """The command lines of the README's CLI walkthrough block (the fenced block right after the marker)."""
    text = (REPO / "README.md").read_text()
    start = text.index(README_MARKER)
    block = re.search(r"```bash\n(.*?)```", text[start:], flags=re.S)
    assert block, "the README's CLI walkthrough has no bash block after its marker"
    return [line for line in block[1].splitlines() if line.strip() and not line.lstrip().startswith("#")]


def argv(line: str) -> list[str]:
    return shlex.split(line, comments=True)


pytestmark = pytest.mark.usefixtures("three_nodes")


@pytest.fixture()
def cli(tool_paths: dict[str, Path], tmp_path: Path) -> PulumiCli:
    """The `pulumi` CLI in a copy of the repository's Pulumi.yaml and __main__.py, with a backend of its own."""
    program = copy_stack_program(tmp_path / "program")
    env = engine_env(tmp_path, tool_paths)
    return PulumiCli(tool_paths["pulumi"], program, env)


@dataclass
class Walkthrough:
    """Runs README lines through bash and checks the cluster after each, tracking the configured version."""

    cli: PulumiCli
    k8s: Any
    env: dict[str, str]
    version: str = ""
    installed: str = ""
    outputs: list[str] = field(default_factory=list)

    def run(self, line: str) -> str:
        proc = subprocess.run(["bash", "-euo", "pipefail", "-c", line], cwd=self.cli.cwd, capture_output=True,
                              text=True, timeout=900, env={**self.env, **self.cli.env})
        output = proc.stdout + proc.stderr
        self.outputs.append(output)
        assert proc.returncode == 0, f"`{line}` exited {proc.returncode}:\n{output[-4000:]}"
        self.check(argv(line), output)
        return output

    def check(self, argv: list[str], output: str) -> None:
        verb = argv[1]
        if argv[1:4] == ["config", "set", "calicoVersion"]:
            self.version = argv[4]
        elif verb == "preview":
            assert not PREVIEW_REPLACEMENT.search(output), output[-3000:]
            if self.installed:
                assert_installed(self.k8s, self.installed)  # a preview changes nothing
            else:
                assert not calico_node_pods(self.k8s)
        elif verb == "up":
            assert_installed(self.k8s, self.version)
            self.installed = self.version
        elif verb == "refresh":
            assert_installed(self.k8s, self.installed)
        elif verb == "destroy":
            assert not exists(lambda: calico_node(self.k8s))
            wait_for(lambda: not calico_node_pods(self.k8s), 60, "calico-node pods deleted")
            assert crd_names(self.k8s), "destroy keeps Calico's CRDs"
            self.installed = ""


def test_readme_walkthrough_through_the_cli(node_cluster: ControlPlane, node_k8s: Any, cli: PulumiCli,
                                            tmp_path: Path, tool_paths: dict[str, Path]) -> None:
    """The README's commands, run by bash in a copy of the stack program: install, no-op, in-place upgrade, refresh,
    destroy; the cluster is checked after each, and the kubeconfig's token is in no file and no output."""
    lines = readme_commands()
    verbs = [argv(line)[1:3] for line in lines]
    for required in (["stack", "init"], ["up", "--yes"], ["destroy", "--yes"], ["refresh", "--yes"]):
        assert required in verbs, f"the README walkthrough lost `pulumi {' '.join(required)}`"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(node_cluster.kubeconfig)
    walk = Walkthrough(cli, node_k8s, {"KUBECONFIG": str(kubeconfig), "CALICO_MIRROR": mirror()})
    first_up: dict[Any, str | None] | None = None
    ups = 0
    for line in lines:
        walk.run(line)
        if argv(line)[1] == "up":
            ups += 1
            uids = live_uids(node_k8s, _managed_objects(cli))
            if first_up is None:
                first_up = uids
            else:  # the upgrade: every object that existed before is the same object (no replacement)
                kept = {k: v for k, v in first_up.items() if k in uids and uids[k] is not None}
                assert kept and all(uids[k] == v for k, v in kept.items()), "an object was recreated by the upgrade"
    assert ups == 2 and walk.version == "3.29.2"

    token = node_cluster.token
    assert plaintext_leaks(cli.env, token) == [], "kubeconfig token in plaintext in the backend"
    settings = list(cli.cwd.glob("Pulumi.*.yaml"))
    assert settings and all(token not in p.read_text() for p in settings)
    assert "secure:" in settings[0].read_text()
    assert all(token not in out for out in walk.outputs), "kubeconfig token in a command's output"
    assert backend_dir(cli.env).is_relative_to(tmp_path)


def _managed_objects(cli: PulumiCli) -> list[dict[str, Any]]:
    """The Kubernetes objects in the stack's state (from `pulumi stack export`), as apiVersion/kind/metadata."""
    state = json.loads(cli("stack", "export").stdout)
    objects = []
    for resource in state["deployment"]["resources"]:
        if resource["type"].startswith("kubernetes:") and "outputs" in resource:
            out = resource["outputs"]
            objects.append({"apiVersion": out["apiVersion"], "kind": out["kind"],
                            "metadata": {"name": out["metadata"]["name"],
                                         **({"namespace": out["metadata"]["namespace"]}
                                            if out["metadata"].get("namespace") else {})}})
    return objects


def test_flannel_overlay_stack_through_the_cli(node_cluster: ControlPlane, node_k8s: Any, cli: PulumiCli) -> None:
    """flannel-overlay through the CLI on nodes running a (fake) kube-flannel-ds: flannel is removed, calico-node
    becomes ready on every node."""
    run_fake_flannel(node_k8s, 3, timeout=30)

    cli("stack", "init", "flannel")
    for key, value in {"calicoVersion": "3.28.0", "networkType": "flannel-overlay", "nodeOs": "oracle-linux-8",
                       "manifestMirror": mirror(), "allowExistingNodes": "true",
                       "disableFlannelAddon": "false"}.items():
        cli("config", "set", key, value)
    cli("config", "set", "--secret", "kubeconfig", stdin=node_cluster.kubeconfig)
    preview = cli("preview", "--diff").stdout
    assert "calico-flannel-daemonset" in preview and flannel_present(node_k8s), "preview must not remove flannel"
    cli("up", "--yes")
    assert not flannel_present(node_k8s)
    assert_installed(node_k8s, "3.28.0")
    cli("destroy", "--yes")
    assert not flannel_present(node_k8s), "destroy never brings flannel back"


def test_bad_config_value_fails_preview_without_a_traceback(node_cluster: ControlPlane, cli: PulumiCli) -> None:
    """A networkType typo in `pulumi config` fails preview with the component's one message, no Python traceback."""
    cli("stack", "init", "bad")
    for key, value in {"calicoVersion": "3.28.0", "networkType": "calico-overlay", "nodeOs": "oracle-linux-8",
                       "manifestMirror": mirror()}.items():
        cli("config", "set", key, value)
    cli("config", "set", "--secret", "kubeconfig", stdin=node_cluster.kubeconfig)
    proc = cli("preview", check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "error: network type 'calico-overlay' is not supported; expected one of flannel-overlay, vcn-native" \
        in output, output[-3000:]
    assert "Traceback" not in output and '.py", line' not in output, output[-3000:]
