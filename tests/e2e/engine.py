"""An offline Pulumi engine environment for Automation API stacks (used by the e2e suite and the benchmark)."""

from __future__ import annotations

import base64
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path

from pulumi import automation as auto

from tests.conftest import REPO


def prepare(root: Path, tool_paths: dict[str, Path]) -> dict[str, str]:
    """Lay out bin/, home and a file backend under ``root``; return the environment the engine needs."""
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    plugin = bin_dir / "pulumi-resource-kubernetes"
    if not plugin.exists():
        plugin.symlink_to(tool_paths["pulumi-resource-kubernetes"])
    # Python dynamic providers run as the plugin "pulumi-python", which the CLI distribution ships as a
    # small script; a CLI built from source has none, so provide one bound to this interpreter.
    shim = bin_dir / "pulumi-resource-pulumi-python"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -u -m pulumi.dynamic "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    (root / "state").mkdir(exist_ok=True)
    return {
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


def stack(env: dict[str, str], tool_paths: dict[str, Path], work_dir: Path, project: str,
          program: Callable[[], None]) -> auto.Stack:
    """Create or select stack ``e2e`` of ``project`` with an inline program."""
    opts = auto.LocalWorkspaceOptions(
        work_dir=str(work_dir),
        pulumi_home=env["PULUMI_HOME"],
        pulumi_command=auto.PulumiCommand(root=str(tool_paths["pulumi"].parent.parent)),
        env_vars=env,
        project_settings=auto.ProjectSettings(name=project, runtime="python",
                                              backend=auto.ProjectBackend(url=env["PULUMI_BACKEND_URL"])),
        secrets_provider="passphrase",
    )
    return auto.create_or_select_stack(stack_name="e2e", project_name=project, program=program, opts=opts)


def backend_dir(env: dict[str, str]) -> Path:
    """The file backend's directory: every stack file, backup, history entry and checkpoint is under it."""
    return Path(env["PULUMI_BACKEND_URL"].removeprefix("file://"))


def plaintext_leaks(env: dict[str, str], secret: str) -> list[str]:
    """Files under the backend holding ``secret`` in plaintext or base64 (``stack export`` would decrypt: read files)."""
    backend = backend_dir(env)
    needles = [secret.encode(), base64.b64encode(secret.encode())]
    files = [p for p in backend.rglob("*") if p.is_file()]
    assert files, f"nothing under {backend}"
    return [str(p.relative_to(backend)) for p in files if any(n in p.read_bytes() for n in needles)]
