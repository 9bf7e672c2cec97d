"""An older calico-oke release, built from this repository's history into a virtualenv of its own: the stack state a
user of it has (the migration test), and its figures beside this checkout's (benchmarks/cli.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

#: The last commit of calico-oke 0.1.0's behaviour (its steps as Python dynamic resources).
RELEASE_0_1_0 = "6237a7b"


def install_release(commit: str, root: Path, repo: Path) -> tuple[Path, Path]:
    """calico-oke at ``commit`` extracted under ``root`` and installed (editable) with its own pinned requirements
    into ``root/venv-<commit>``: (source directory, virtualenv)."""
    source = root / f"calico-oke-{commit}"
    source.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(repo), "archive", commit], check=True, capture_output=True,
                             timeout=120).stdout
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True, timeout=120)
    venv = root / f"venv-{commit}"
    uv = Path(sys.prefix) / "bin" / "uv"
    python = venv / "bin" / "python"
    # --seed: with pip, which Pulumi's Python host runs (`pip list`) to find the program's plugins.
    subprocess.run([str(uv), "venv", "-q", "--seed", "--python", sys.executable, str(venv)], check=True, timeout=300)
    subprocess.run([str(uv), "pip", "install", "-q", "--python", str(python), "-r", str(source / "requirements.txt")],
                   check=True, timeout=600)
    subprocess.run([str(uv), "pip", "install", "-q", "--python", str(python), "--no-deps", "-e", str(source)],
                   check=True, timeout=600)
    return source, venv
