"""The stack program the way users run it: the README's `pulumi` commands, the Python language host, 3 fake nodes."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from calico_component.local.controlplane import ControlPlane
from calico_component.local.nodes import run_fake_flannel, wait_for
from calico_component.local.program import copy_stack_program
from calico_component.local.workspace import RUN_TOKEN, PulumiCli, backend_dir, engine_env, kill_leftovers
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
from tests.e2e.readme import AFTER_INTERRUPT, WALKTHROUGH, readme_commands


def argv(line: str) -> list[str]:
    return shlex.split(line, comments=True)


pytestmark = pytest.mark.usefixtures("three_nodes")


@pytest.fixture()
def cli(tool_paths: dict[str, Path], tmp_path: Path) -> Iterator[PulumiCli]:
    """The `pulumi` CLI in a copy of the repository's Pulumi.yaml and __main__.py, with a backend of its own; its
    stack is destroyed afterwards (the next test's stack must not find this one's Calico)."""
    program = copy_stack_program(tmp_path / "program")
    env = engine_env(tmp_path, tool_paths)
    cli = PulumiCli(tool_paths["pulumi"], program, env)
    yield cli
    cli("destroy", "--yes", "--skip-preview", check=False)


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
    lines = readme_commands(WALKTHROUGH)
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
    assert ups == 2 and walk.version == "3.32.0"

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
    for key, value in {"calicoVersion": "3.31.5", "networkType": "flannel-overlay", "nodeOs": "oracle-linux-8",
                       "manifestMirror": mirror(), "allowExistingNodes": "true",
                       "disableFlannelAddon": "false"}.items():
        cli("config", "set", key, value)
    cli("config", "set", "--secret", "kubeconfig", stdin=node_cluster.kubeconfig)
    preview = cli("preview", "--diff").stdout
    assert "calico-flannel-daemonset" in preview and flannel_present(node_k8s), "preview must not remove flannel"
    cli("up", "--yes")
    assert not flannel_present(node_k8s)
    assert_installed(node_k8s, "3.31.5")
    cli("destroy", "--yes")
    assert not flannel_present(node_k8s), "destroy never brings flannel back"


def test_bad_config_value_fails_preview_without_a_traceback(node_cluster: ControlPlane, cli: PulumiCli) -> None:
    """A networkType typo in `pulumi config` fails preview with the component's one message, no Python traceback."""
    cli("stack", "init", "bad")
    for key, value in {"calicoVersion": "3.31.5", "networkType": "calico-overlay", "nodeOs": "oracle-linux-8",
                       "manifestMirror": mirror()}.items():
        cli("config", "set", key, value)
    cli("config", "set", "--secret", "kubeconfig", stdin=node_cluster.kubeconfig)
    proc = cli("preview", check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "error: network type 'calico-overlay' is not supported; expected one of flannel-overlay, vcn-native" \
        in output, output[-3000:]
    assert "Traceback" not in output and '.py", line' not in output, output[-3000:]


def _interrupted_up(cli: PulumiCli, until: Any, timeout: float = 120) -> int:
    """Start `pulumi up --yes`, and once ``until()`` holds send SIGINT to its process group (a terminal's Ctrl-C);
    return its exit status. It must stop by itself within a minute: Pulumi cancels the provider's awaits at once and
    lets the component's wait for calico-node end (the stacks here give it an awaitTimeoutSeconds of 20 s)."""
    token = f"{RUN_TOKEN}=interrupted-{os.getpid()}-{time.monotonic_ns()}"
    name, _, value = token.partition("=")
    proc = subprocess.Popen([str(cli.binary), "up", "--yes", "--skip-preview"], cwd=cli.cwd,
                            env={**os.environ, **cli.env, name: value},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        wait_for(until, timeout, "the rollout `up` waits on to start")
        time.sleep(2)  # well into the await
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        kill_leftovers(token)  # the plugins run in process groups of their own
    assert proc.returncode != 0, out[-3000:]
    return proc.returncode


def _rolling_unpullable(k8s: Any) -> bool:
    return any(p.spec.containers[0].image.startswith("never-ready.invalid/") for p in calico_node_pods(k8s))


def _recover_as_the_readme_says(cli: PulumiCli, kubeconfig: Path) -> None:
    for line in readme_commands(AFTER_INTERRUPT):
        proc = subprocess.run(["bash", "-euo", "pipefail", "-c", line], cwd=cli.cwd, capture_output=True, text=True,
                              timeout=900, env={**os.environ, **cli.env, "KUBECONFIG": str(kubeconfig)})
        assert proc.returncode == 0, f"`{line}` exited {proc.returncode}:\n{(proc.stdout + proc.stderr)[-4000:]}"


def _stack(cli: PulumiCli, name: str, cp: ControlPlane, **extra: str) -> None:
    cli("stack", "init", name)
    for key, value in {"calicoVersion": "3.31.5", "networkType": "vcn-native", "nodeOs": "oracle-linux-8",
                       "manifestMirror": mirror(), **extra}.items():
        cli("config", "set", key, value)
    cli("config", "set", "--secret", "kubeconfig", stdin=cp.kubeconfig)


def test_ctrl_c_during_an_update_then_the_readme_command_converges(node_cluster: ControlPlane, node_k8s: Any,
                                                                  cli: PulumiCli, tmp_path: Path) -> None:
    """Ctrl-C while `up` waits on a rollout that cannot finish, the input put right, then the README's command: every
    calico-node pod ready on the configured image, no object recreated, and preview has nothing to change."""
    _stack(cli, "interrupt", node_cluster, awaitTimeoutSeconds="20")
    cli("up", "--yes", "--skip-preview")
    objects = _managed_objects(cli)
    uids = live_uids(node_k8s, objects)
    cli("config", "set", "imageRegistry", "never-ready.invalid")
    _interrupted_up(cli, lambda: _rolling_unpullable(node_k8s))
    assert _rolling_unpullable(node_k8s), "the interrupted up left nothing to repair: the test proves nothing"
    cli("config", "rm", "imageRegistry")
    _recover_as_the_readme_says(cli, node_cluster.kubeconfig_path)
    assert_installed(node_k8s, "3.31.5")
    assert live_uids(node_k8s, objects) == uids, "an object was recreated"
    cli("preview", "--expect-no-changes")


def test_ctrl_c_during_a_first_install_then_the_readme_command_converges(node_cluster: ControlPlane, node_k8s: Any,
                                                                        cli: PulumiCli) -> None:
    """Ctrl-C during a first install (the workloads' creates still awaiting), the input put right, then the README's
    command: Calico ready on every node with the objects the first attempt created, and nothing left to change."""
    _stack(cli, "interrupt-first", node_cluster, imageRegistry="never-ready.invalid", awaitTimeoutSeconds="20")
    _interrupted_up(cli, lambda: _rolling_unpullable(node_k8s))
    created = live_uids(node_k8s, [{"apiVersion": "apps/v1", "kind": "DaemonSet",
                                    "metadata": {"name": "calico-node", "namespace": "kube-system"}}])
    assert all(created.values())
    cli("config", "rm", "imageRegistry")
    _recover_as_the_readme_says(cli, node_cluster.kubeconfig_path)
    assert_installed(node_k8s, "3.31.5")
    assert live_uids(node_k8s, _managed_objects(cli))[("DaemonSet", "kube-system", "calico-node")] == \
        created[("DaemonSet", "kube-system", "calico-node")]
    cli("preview", "--expect-no-changes")
