"""Fixtures for the end-to-end suite: pinned tools, a live control plane, and Automation API stacks."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from pulumi import automation as auto

from calico_component.local.controlplane import ControlPlane
from calico_component.local.program import copy_stack_program
from calico_component.local.workspace import PulumiCli, engine_env
from tests.conftest import mirror_path
from tests.e2e import engine, tools


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.e2e)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Name the binaries the suite ran with (the same lookup the workers made), and the provider's create semantics."""
    found = {name: tools.find(name) for name in tools.TOOL_NAMES}
    if not all(found.values()):
        return
    terminalreporter.section("e2e tools that ran")
    for name, path in found.items():
        assert path is not None
        terminalreporter.write_line(tools.describe(name, path))
    provider = found["pulumi-resource-kubernetes"]
    assert provider is not None
    semantics = ("4.29+ (a create of an existing object fails without upsertExistingObjects)"
                 if tools.creates_with_client_side_create(provider) else "before 4.29 (creates upsert)")
    terminalreporter.write_line(f"provider create semantics: {semantics}")


def _ensure(names: tuple[str, ...]) -> dict[str, Path]:
    try:
        return tools.ensure(names)
    except tools.ToolError as exc:
        pytest.fail(
            f"e2e tools unavailable: {exc}\nInstall Go (https://go.dev) so they can be built, or provide them: "
            "pulumi and pulumi-resource-kubernetes on PATH, kube-apiserver and etcd in $KUBEBUILDER_ASSETS "
            "(see docs/contributing.md, End-to-end suite).",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def tool_paths() -> dict[str, Path]:
    """The engine, its hosts and provider, and a cluster's binaries: found (env var, PATH, cache) or built from
    pinned modules into the cache (a build already running, as in `.ci/run`, is waited for)."""
    return _ensure(tools.BASE_TOOLS)


@pytest.fixture(scope="session")
def dataplane_tool_paths(tool_paths: dict[str, Path]) -> dict[str, Path]:
    """Also Calico's own binaries for a node with a real dataplane (`.ci/run` runs these tests last, while or after
    they build)."""
    return {**tool_paths, **_ensure(tools.CALICO_TOOLS)}


@pytest.fixture(scope="module")
def control_plane(tool_paths: dict[str, Path]) -> Iterator[ControlPlane]:
    """A control plane without nodes: nothing is scheduled, so tests use skip_await."""
    with ControlPlane(tool_paths["etcd"], tool_paths["kube-apiserver"], tool_paths["kube-controller-manager"]) as cp:
        yield cp


@pytest.fixture(scope="module")
def node_cluster(tool_paths: dict[str, Path]) -> Iterator[ControlPlane]:
    """A control plane with workload controllers, kube-scheduler and kwok: the nodes tests add run pods."""
    with ControlPlane(tool_paths["etcd"], tool_paths["kube-apiserver"], tool_paths["kube-controller-manager"],
                      kube_scheduler=tool_paths["kube-scheduler"], kwok=tool_paths["kwok"]) as cp:
        yield cp


def api_client(cp: ControlPlane) -> Any:
    """An official Kubernetes client ApiClient for a control plane."""
    from kubernetes import config

    return config.new_client_from_config_dict(yaml.safe_load(cp.kubeconfig))  # type: ignore[no-untyped-call]


@pytest.fixture(scope="module")
def k8s(control_plane: ControlPlane) -> Any:
    return api_client(control_plane)


@pytest.fixture(scope="module")
def node_k8s(node_cluster: ControlPlane) -> Any:
    return api_client(node_cluster)


@pytest.fixture()
def three_nodes(node_k8s: Any) -> Iterator[list[str]]:
    """3 fresh fake nodes for one test; none of them, nor a Calico CRD, outlives it."""
    from calico_component.local.nodes import add_nodes, delete_nodes
    from tests.e2e.cluster import delete_crds

    yield add_nodes(node_k8s, 3)
    delete_nodes(node_k8s)
    delete_crds(node_k8s)


Kubectl = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture()
def kubectl(tool_paths: dict[str, Path], control_plane: ControlPlane) -> Kubectl:
    """Run the pinned kubectl against the control plane, as a user following Oracle's page would."""
    def run(*args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(tool_paths["kubectl"]), "--kubeconfig", str(control_plane.kubeconfig_path), *args],
                              input=stdin, capture_output=True, text=True, timeout=300)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        return proc
    return run


@pytest.fixture(scope="session")
def pulumi_env(tool_paths: dict[str, Path]) -> Iterator[dict[str, str]]:
    """An offline Pulumi environment: temp home and file backend, ambient provider plugin, dynamic provider shim."""
    with tempfile.TemporaryDirectory(prefix="calico-oke-pulumi-") as tmp:
        env = engine.prepare(Path(tmp), tool_paths)
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)  # the inline program and the engine both run with these
        try:
            yield env
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


@dataclass
class Run:
    """What one engine operation did, per resource."""

    ops: list[tuple[str, str, str]] = field(default_factory=list)  # (op, type, name)

    def on_event(self, event: auto.EngineEvent) -> None:
        pre = event.resource_pre_event
        if pre is not None:
            meta = pre.metadata
            self.ops.append((str(meta.op.value if hasattr(meta.op, "value") else meta.op), meta.type,
                             meta.urn.rsplit("::", 1)[-1]))

    def of(self, op: str) -> list[tuple[str, str]]:
        return [(t, n) for o, t, n in self.ops if o == op]

    def changed(self) -> list[tuple[str, str, str]]:
        return [x for x in self.ops if x[0] not in ("same", "read", "refresh")]


StackFactory = Callable[[str, Callable[[], None]], auto.Stack]


@pytest.fixture()
def make_stack(pulumi_env: dict[str, str], tool_paths: dict[str, Path], tmp_path: Path) -> Iterator[StackFactory]:
    """Create Automation API stacks with inline programs; each is destroyed and removed afterwards."""
    created: dict[str, auto.Stack] = {}

    def factory(project: str, program: Callable[[], None]) -> auto.Stack:
        stack = engine.stack(pulumi_env, tool_paths, tmp_path, project, program)
        created[project] = stack  # the same project again selects the same stack (e.g. an upgrade)
        return stack

    yield factory
    for stack in created.values():
        try:
            stack.destroy(on_output=lambda _: None)
        except auto.errors.CommandError:
            pass
        try:
            stack.workspace.remove_stack(stack.name, force=True)
        except auto.errors.StackNotFoundError:
            pass


@pytest.fixture()
def stack_cli(tool_paths: dict[str, Path], tmp_path: Path) -> Iterator[Callable[[str], PulumiCli]]:
    """A factory of stack-program copies sharing one backend (as two stacks of one project would); every stack is
    destroyed afterwards, the one that owns Calico last."""
    env = engine_env(tmp_path / "pulumi", tool_paths)
    made: list[PulumiCli] = []

    def make(name: str) -> PulumiCli:
        made.append(PulumiCli(tool_paths["pulumi"], copy_stack_program(tmp_path / name), env))
        return made[-1]
    yield make
    for cli in reversed(made):
        cli("destroy", "--yes", check=False)


def mirror() -> str:
    return str(mirror_path())
