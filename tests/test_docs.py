"""The documentation users read agrees with the code: the inputs reference, the links between pages, every page's
audience line."""

from __future__ import annotations

import dataclasses
import re

from calico_component.component import inputs_doc
from calico_component.component.args import CalicoArgs
from calico_component.component.inputs import camel
from tests.conftest import REPO
from tests.e2e.readme import documents

INPUTS_PAGE = REPO / "docs" / "inputs.md"


def _row(name: str) -> str:
    """The inputs reference's table row for the input ``name`` (the one starting with it)."""
    inputs_section = INPUTS_PAGE.read_text().split("\n## Outputs\n")[0]
    rows = [line for line in inputs_section.splitlines() if line.startswith(f"| `{name}` |")]
    assert len(rows) == 1, f"docs/inputs.md has {len(rows)} rows for {name}"
    return rows[0]


def test_inputs_reference_is_what_the_code_generates() -> None:
    """docs/inputs.md is exactly what the inputs table of the code prints: a field added or changed shows up there."""
    assert INPUTS_PAGE.read_text() == inputs_doc.markdown(), (
        "docs/inputs.md differs from the code: run `python -m calico_component.component.inputs_doc > docs/inputs.md`")


def test_inputs_reference_has_one_row_per_calicoargs_field_with_its_default() -> None:
    """Read independently of the generator: each CalicoArgs field has one row naming its camelCase key and default."""
    for f in dataclasses.fields(CalicoArgs):
        cells = [c.strip() for c in _row(f.name).strip("|").split(" | ")]
        assert cells[1] == f"`{camel(f.name)}`"
        if f.default is dataclasses.MISSING:
            expected = "**required**"
        elif f.default is None:
            expected = "none"
        else:
            expected = f"`{str(f.default).lower() if isinstance(f.default, bool) else f.default}`"
        assert cells[3] == expected, f.name


def test_every_relative_link_in_the_docs_points_at_a_file_and_heading_that_exist() -> None:
    """README and docs/ link each other by relative path and #anchor; a moved page or renamed heading breaks none."""
    checked = 0
    for doc in documents():
        for target in re.findall(r"\]\(([^)#\s]*)(#[^)\s]*)?\)", doc.read_text()):
            path, anchor = target
            if path.startswith(("http://", "https://")):
                continue
            dest = (doc.parent / path) if path else doc
            assert dest.is_file(), f"{doc.relative_to(REPO)} links to missing {path}"
            if anchor:
                prose = re.sub(r"^```.*?^```", "", dest.read_text(), flags=re.M | re.S)  # a `# comment` is no heading
                headings = {_anchor(h) for h in re.findall(r"^#+ (.+)$", prose, flags=re.M)}
                assert anchor[1:] in headings, f"{doc.relative_to(REPO)} links to missing {path}{anchor}"
            checked += 1
    assert checked >= 20


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def test_every_docs_page_says_who_it_is_for() -> None:
    """Each page under docs/ starts with its title and a `For:` line, so a reader knows at once whether to read on."""
    pages = sorted((REPO / "docs").glob("*.md"))
    assert len(pages) >= 12
    for page in pages:
        lines = [line for line in page.read_text().splitlines() if line.strip()]
        assert lines[0].startswith("# ") and lines[1].startswith("For: "), page.name


def test_readme_stays_a_five_minute_read() -> None:
    """The README is the path to a first preview, not the manual: under about 250 lines, everything else in docs/."""
    lines = (REPO / "README.md").read_text().splitlines()
    assert 50 < len(lines) <= 260
