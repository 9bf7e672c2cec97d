"""The repository's stack program (Pulumi.yaml + __main__.py), copied into a scratch directory to run with the CLI."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

PROGRAM_FILES = ("Pulumi.yaml", "__main__.py")


def repo_root() -> Path:
    """The checkout this package runs from (the stack program lives at its top level)."""
    return Path(__file__).resolve().parents[2]


def current_virtualenv() -> Path:
    """The virtualenv this interpreter runs in: the stack program's ``.venv`` must have calico-oke installed."""
    if sys.prefix == sys.base_prefix:
        raise RuntimeError(
            "the stack program runs in a virtualenv with calico-oke installed (Pulumi.yaml: virtualenv .venv), and "
            f"this Python ({sys.executable}) is not one; run from the project's virtualenv (the README's set-up line)"
        )
    return Path(sys.prefix)


def copy_example(name: str, dest: Path, venv: Path | None = None) -> Path:
    """Copy ``examples/<name>``'s Pulumi.yaml and __main__.py into ``dest``, its ``venv`` pointing at ``venv``."""
    source = repo_root() / "examples" / name
    if not (source / "Pulumi.yaml").is_file():
        raise FileNotFoundError(f"there is no example {name!r} at {source}")
    dest.mkdir(parents=True, exist_ok=True)
    for file in PROGRAM_FILES:
        shutil.copyfile(source / file, dest / file)
    (dest / "venv").symlink_to(venv or current_virtualenv(), target_is_directory=True)
    return dest


def copy_stack_program(dest: Path, venv: Path | None = None) -> Path:
    """Copy Pulumi.yaml and __main__.py unchanged into ``dest``, with ``dest/.venv`` pointing at ``venv``.

    Pulumi.yaml keeps its own backend; point the copy elsewhere with PULUMI_BACKEND_URL, which
    the CLI takes over the project's setting.
    """
    root = repo_root()
    missing = [name for name in PROGRAM_FILES if not (root / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"the stack program ({', '.join(missing)}) is not at {root}: run this from a clone of the calico-oke "
            "repository, installed with pip install -e ."
        )
    dest.mkdir(parents=True, exist_ok=True)
    for name in PROGRAM_FILES:
        shutil.copyfile(root / name, dest / name)
    (dest / ".venv").symlink_to(venv or current_virtualenv(), target_is_directory=True)
    return dest
