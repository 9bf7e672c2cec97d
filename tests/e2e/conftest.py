"""Fixtures for the end-to-end suite: pinned tools, a live control plane, and Automation API stacks."""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, mirror_path
from tests.e2e import tools
from tests.e2e.controlplane import ControlPlane

from pulumi import automation as auto  # noqa: E402


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def tool_paths() -> dict[str, Path]:
    """Every binary, found (env var, PATH, cache) or built from pinned Go modules into the cache."""
    try:
        return tools.ensure()
    except tools.ToolError as exc:
        pytest.fail(
            f"e2e tools unavailable: {exc}\nInstall Go (https://go.dev) so they can be built, or provide them: "
            "pulumi and pulumi-resource-kubernetes on PATH, kube-apiserver and etcd in $KUBEBUILDER_ASSETS "
            "(see README, End-to-end suite).",
            pytrace=False,
        )


@pytest.fixture(scope="module")
def control_plane(tool_paths: dict[str, Path]) -> Iterator[ControlPlane]:
    with ControlPlane(tool_paths["etcd"], tool_paths["kube-apiserver"], tool_paths["kube-controller-manager"]) as cp:
        yield cp


@pytest.fixture(scope="module")
def k8s(control_plane: ControlPlane) -> Any:
    """An official Kubernetes client ApiClient for the control plane."""
    from kubernetes import config

    return config.new_client_from_config_dict(yaml.safe_load(control_plane.kubeconfig))


@pytest.fixture(scope="session")
def pulumi_env(tool_paths: dict[str, Path]) -> Iterator[dict[str, str]]:
    """An offline Pulumi environment: temp home and file backend, ambient provider plugin, dynamic provider shim."""
    with tempfile.TemporaryDirectory(prefix="calico-oke-pulumi-") as tmp:
        root = Path(tmp)
        bin_dir = root / "bin"
        bin_dir.mkdir()
        (bin_dir / "pulumi-resource-kubernetes").symlink_to(tool_paths["pulumi-resource-kubernetes"])
        # Python dynamic providers run as the plugin "pulumi-python", which the CLI distribution ships as a
        # small script; this build of the CLI has none, so provide one bound to this interpreter.
        shim = bin_dir / "pulumi-resource-pulumi-python"
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -u -m pulumi.dynamic "$@"\n')
        shim.chmod(shim.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        (root / "state").mkdir()
        env = {
            "PATH": f"{bin_dir}{os.pathsep}{tool_paths['pulumi'].parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "PULUMI_HOME": str(root / "home"),
            "PULUMI_BACKEND_URL": f"file://{root / 'state'}",
            "PULUMI_CONFIG_PASSPHRASE": "",
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PULUMI_SKIP_CONFIRMATIONS": "true",
            "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "CALICO_OKE_CACHE_DIR": str(root / "manifest-cache"),
        }
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
    diags: list[str] = field(default_factory=list)

    def on_event(self, event: auto.EngineEvent) -> None:
        pre = event.resource_pre_event
        if pre is not None:
            meta = pre.metadata
            self.ops.append((str(meta.op.value if hasattr(meta.op, "value") else meta.op), meta.type,
                             meta.urn.rsplit("::", 1)[-1]))
        if event.diagnostic_event is not None:
            self.diags.append(event.diagnostic_event.message)

    def of(self, op: str) -> list[tuple[str, str]]:
        return [(t, n) for o, t, n in self.ops if o == op]

    def changed(self) -> list[tuple[str, str, str]]:
        return [x for x in self.ops if x[0] not in ("same", "read", "refresh")]


StackFactory = Callable[[str, Callable[[], None]], auto.Stack]


@pytest.fixture()
def make_stack(pulumi_env: dict[str, str], tool_paths: dict[str, Path], tmp_path: Path) -> Iterator[StackFactory]:
    """Create Automation API stacks with inline programs; each is destroyed and removed afterwards."""
    created: dict[str, auto.Stack] = {}
    command = auto.PulumiCommand(root=str(tool_paths["pulumi"].parent.parent))

    def factory(project: str, program: Callable[[], None]) -> auto.Stack:
        opts = auto.LocalWorkspaceOptions(
            work_dir=str(tmp_path),
            pulumi_home=pulumi_env["PULUMI_HOME"],
            pulumi_command=command,
            env_vars=pulumi_env,
            project_settings=auto.ProjectSettings(name=project, runtime="python",
                                                  backend=auto.ProjectBackend(url=pulumi_env["PULUMI_BACKEND_URL"])),
            secrets_provider="passphrase",
        )
        stack = auto.create_or_select_stack(stack_name="e2e", project_name=project, program=program, opts=opts)
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


def mirror() -> str:
    return str(mirror_path())
