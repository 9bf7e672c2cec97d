"""The documented blocks tests run exactly as written: each follows a ``<!-- marker`` comment in README.md or docs/."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import REPO

#: The CLI walkthrough (tests/e2e/test_cli.py), in README.md.
WALKTHROUGH = "<!-- cli-walkthrough"
#: What to run after an interrupted `up` (tests/e2e/test_cli.py), in docs/waiting-and-timeouts.md.
AFTER_INTERRUPT = "<!-- after-interrupt"
#: What to run once before a YAML program's first preview with a local path (tests/e2e/test_package.py), in
#: docs/other-languages.md.
YAML_FIRST_CONTACT = "<!-- yaml-first-contact"
#: The program for a real OKE cluster (tests/test_examples.py), in README.md.
OKE_PROGRAM = "<!-- oke-program"
#: A user's steps from `pulumi new` to `pulumi up` with that program (tests/e2e/test_readme_program.py), in README.md:
#: every fenced block from this marker to OKE_FIRST_HOUR_END, in order.
OKE_FIRST_HOUR = "<!-- oke-first-hour"
OKE_FIRST_HOUR_END = "<!-- /oke-first-hour -->"


def documents() -> list[Path]:
    """Where marked blocks live: the README and every page under docs/."""
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _holder(marker: str) -> tuple[Path, str]:
    """The one document that holds ``marker``, exactly once, and its text."""
    holders = [(path, text) for path in documents() if marker in (text := path.read_text())]
    names = [str(path.relative_to(REPO)) for path, _ in holders]
    assert len(holders) == 1 and holders[0][1].count(marker) == 1, f"{marker} must be in one document once: {names}"
    return holders[0]


def marked_block(marker: str, language: str = "bash") -> str:
    """The fenced ``language`` block right after ``marker``, which exactly one document holds, exactly once."""
    path, text = _holder(marker)
    block = re.search(rf"```{language}\n(.*?)```", text[text.index(marker):], flags=re.S)
    assert block, f"{path.relative_to(REPO)} has no {language} block after {marker}"
    return block[1]


def marked_blocks(marker: str, end: str) -> list[tuple[str, str]]:
    """Every fenced block between ``marker`` and ``end`` (one document holds each once), in order: (language, text)."""
    path, text = _holder(marker)
    _holder(end)
    region = text[text.index(marker):]
    assert end in region, f"{path.relative_to(REPO)}: {end} does not follow {marker}"
    return re.findall(r"^```(\w*)\n(.*?)^```", region[:region.index(end)], flags=re.S | re.M)


def commands(block: str) -> list[str]:
    """The command lines of a bash block: comments and blank lines aside."""
    return [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def readme_commands(marker: str) -> list[str]:
    """The command lines (comments and blank lines aside) of the bash block right after ``marker``."""
    return commands(marked_block(marker))
