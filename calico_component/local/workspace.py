"""An offline Pulumi CLI environment under one directory (home, file backend, tools on PATH) and a runner for it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

#: The variable that marks every process one command started (its plugins included), to find what outlives it.
RUN_TOKEN = "CALICO_OKE_PULUMI_RUN"

#: Tools whose directories go on the engine's PATH: the CLI finds language hosts there, and a provider binary on
#: PATH is used as an "ambient" plugin, so nothing is downloaded.
ENGINE_TOOLS = ("pulumi", "pulumi-language-python", "pulumi-language-nodejs", "pulumi-language-go",
                "pulumi-language-yaml", "pulumi-resource-kubernetes")


#: What a development shell sets and a user's does not: never passed to the engine, so a program (and calico-oke's
#: provider) finds calico-oke only where its project says (its virtualenv, Pulumi.yaml's plugins), as on a user's machine.
DEVELOPMENT_VARS = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PULUMI_PYTHON_CMD", "CONDA_PREFIX")


def user_path(path: str) -> str:
    """``path`` without this interpreter's virtualenv (its ``bin``): what the engine would see in a user's shell."""
    venv_bin = str(Path(sys.prefix) / "bin") if sys.prefix != sys.base_prefix else None
    return os.pathsep.join(d for d in path.split(os.pathsep) if d and d != venv_bin)


def user_environ(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment as a user's shell would have it (DEVELOPMENT_VARS dropped), with ``extra`` on top."""
    base = {k: v for k, v in os.environ.items() if k not in DEVELOPMENT_VARS}
    return {**base, "PATH": user_path(os.environ.get("PATH", "")), **extra}


def engine_env(root: Path, tool_paths: Mapping[str, Path]) -> dict[str, str]:
    """The environment of an engine whose Pulumi home, file backend and manifest cache are under ``root``.

    Nothing is read from or written to the user's ``~/.pulumi``, and nothing of this interpreter's virtualenv is on
    the engine's PATH: a program finds calico-oke (and its provider) only where its own project says.
    """
    (root / "state").mkdir(parents=True, exist_ok=True)
    dirs = [str(tool_paths[name].parent) for name in ENGINE_TOOLS if name in tool_paths]
    path = os.pathsep.join([*dict.fromkeys(dirs), user_path(os.environ.get("PATH", ""))])
    return {
        "PATH": path,
        "PULUMI_HOME": str(root / "home"),
        "PULUMI_BACKEND_URL": f"file://{root / 'state'}",
        "PULUMI_CONFIG_PASSPHRASE": "",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        "PULUMI_SKIP_CONFIRMATIONS": "true",
        "CALICO_OKE_CACHE_DIR": str(root / "manifest-cache"),
        # Programs and plugins import calico_component from the checkout: leave no __pycache__ in it.
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def backend_dir(env: Mapping[str, str]) -> Path:
    """The file backend's directory: every stack file, backup, history entry and checkpoint is under it."""
    return Path(env["PULUMI_BACKEND_URL"].removeprefix("file://"))


class PulumiCommandError(RuntimeError):
    """A ``pulumi`` command exited non-zero."""

    def __init__(self, args: tuple[str, ...], returncode: int, output: str) -> None:
        self.args_ = args
        self.returncode = returncode
        self.output = output
        super().__init__(f"pulumi {' '.join(args)} exited {returncode}:\n{output[-4000:]}")


@dataclass
class PulumiCli:
    """Run ``pulumi`` in one project directory with one environment, keeping every command's output.

    Each command runs in a process group of its own (the CLI and the plugins it starts); when the
    caller is interrupted, or a command outlives ``timeout``, the group gets SIGINT (Pulumi's own
    cancellation), then SIGKILL, so nothing it started is left behind.
    """

    binary: Path
    cwd: Path
    env: Mapping[str, str]
    timeout: float = 900
    transcript: list[tuple[tuple[str, ...], str]] = field(default_factory=list)

    def __call__(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        run = uuid.uuid4().hex
        proc = subprocess.Popen([str(self.binary), *args], cwd=self.cwd, env=user_environ({**self.env, RUN_TOKEN: run}),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            stdout, stderr = proc.communicate(stdin, timeout=self.timeout)
        except BaseException:
            _interrupt(proc, f"{RUN_TOKEN}={run}")
            raise
        output = stdout + stderr
        self.transcript.append((args, output))
        if check and proc.returncode != 0:
            raise PulumiCommandError(args, proc.returncode, output)
        return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)

    def output(self) -> str:
        """Everything every command printed so far."""
        return "".join(out for _, out in self.transcript)


def kill_leftovers(token: str) -> list[int]:
    """SIGKILL every process whose environment holds ``token`` (``NAME=value``); return their pids.

    Pulumi starts each plugin in a process group of its own and stops them as it exits, but a plugin
    it was starting when it was interrupted can outlive it (seen with the Python language host): the
    environment every descendant inherits is what finds it.
    """
    needle = token.encode() + b"\0"
    killed = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _environ_holds(entry, needle):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
    return killed


def _environ_holds(proc_dir: Path, needle: bytes) -> bool:
    try:
        return needle in (proc_dir / "environ").read_bytes() + b"\0"
    except OSError:  # gone, or not ours to read
        return False


def _interrupt(proc: subprocess.Popen[str], token: str, grace: float = 10) -> None:
    """SIGINT the command's process group (Pulumi cancels and stops its plugins), then SIGKILL what is left,
    in that group and (by ``token``) in the plugins' own groups."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.communicate(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    kill_leftovers(token)
