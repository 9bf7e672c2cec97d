"""The README's command blocks that e2e tests run exactly as written (each follows a ``<!-- marker`` comment)."""

from __future__ import annotations

import re

from tests.conftest import REPO

#: The CLI walkthrough (tests/e2e/test_cli.py).
WALKTHROUGH = "<!-- cli-walkthrough"
#: What to run after an interrupted `up` (tests/e2e/test_cli.py).
AFTER_INTERRUPT = "<!-- after-interrupt"
#: What to run once before a YAML program's first preview with a local path (tests/e2e/test_package.py).
YAML_FIRST_CONTACT = "<!-- yaml-first-contact"


def readme_commands(marker: str) -> list[str]:
    """The command lines (comments and blank lines aside) of the fenced bash block right after ``marker``."""
    text = (REPO / "README.md").read_text()
    start = text.index(marker)
    block = re.search(r"```bash\n(.*?)```", text[start:], flags=re.S)
    assert block, f"the README has no bash block after {marker}"
    return [line for line in block[1].splitlines() if line.strip() and not line.lstrip().startswith("#")]
