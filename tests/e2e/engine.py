"""An offline Pulumi engine environment for Automation API stacks (used by the e2e suite and the benchmark)."""

from __future__ import annotations

import base64
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from pulumi import automation as auto

from calico_component.local.demo import _GENERIC_ERRORS
from calico_component.local.workspace import backend_dir, engine_env

__all__ = ["PREVIEW_REPLACEMENT", "backend_dir", "cli_errors", "plaintext_leaks", "prepare", "stack"]

#: How `pulumi preview --diff` shows a replacement: the step's op in parentheses, or the summary's count.
PREVIEW_REPLACEMENT = re.compile(r"\((replace|create-replacement|delete-replaced)\)|\bto replace\b")


def prepare(root: Path, tool_paths: dict[str, Path]) -> dict[str, str]:
    """The engine environment under ``root`` (calico_component.local.workspace)."""
    return engine_env(root, tool_paths)


def project_file(work_dir: Path, project: str, backend: str) -> None:
    """The inline program's Pulumi.yaml: calico-oke's provider is the one pip installed into this interpreter's
    virtualenv (``pulumi-resource-calico-oke``), declared as a user's Python project declares it (README)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / "Pulumi.yaml").write_text(
        f"name: {project}\nruntime: python\nbackend:\n  url: {backend}\n"
        f"plugins:\n  providers:\n    - name: calico-oke\n      path: {Path(sys.prefix) / 'bin'}\n")


def stack(env: dict[str, str], tool_paths: dict[str, Path], work_dir: Path, project: str,
          program: Callable[[], None]) -> auto.Stack:
    """Create or select stack ``e2e`` of ``project`` with an inline program. The program runs in this process (the
    Automation API's way); the engine and the providers it starts get a user's environment (``user_environ``)."""
    project_file(work_dir, project, env["PULUMI_BACKEND_URL"])
    opts = auto.LocalWorkspaceOptions(
        work_dir=str(work_dir),
        pulumi_home=env["PULUMI_HOME"],
        pulumi_command=auto.PulumiCommand(root=str(tool_paths["pulumi"].parent.parent)),
        env_vars=env,
        secrets_provider="passphrase",
    )
    return auto.create_or_select_stack(stack_name="e2e", project_name=project, program=program, opts=opts)


def plaintext_leaks(env: Mapping[str, str], secret: str) -> list[str]:
    """Files under the backend holding ``secret`` in plaintext or base64 (``stack export`` would decrypt: read files)."""
    backend = backend_dir(env)
    needles = [secret.encode(), base64.b64encode(secret.encode())]
    files = [p for p in backend.rglob("*") if p.is_file()]
    assert files, f"nothing under {backend}"
    return [str(p.relative_to(backend)) for p in files if any(n in p.read_bytes() for n in needles)]


def cli_errors(output: str) -> list[str]:
    """The distinct specific error lines (pulumi's generic "program exited with non-zero exit code" trailer aside)."""
    lines = [line.strip() for line in output.splitlines() if line.strip().startswith("error:")]
    return sorted({line for line in lines if not any(g in line for g in _GENERIC_ERRORS)})
