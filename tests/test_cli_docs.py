"""Each command's flag table in docs/ lists exactly the flags its parser takes: none missing, none that do not exist."""

from __future__ import annotations

import argparse
import re

import pytest

from calico_component import cli
from tests.conftest import REPO

#: The page holding each command's table, which follows a ``<!-- flags: <command> -->`` line.
PAGES = {"render": "air-gapped.md", "mirror": "air-gapped.md", "status": "status.md", "verify": "verify.md",
         "demo": "demo.md"}
_TABLE_RE = re.compile(r"^<!-- flags: ([a-z]+) -->\n((?:\|.*\n?)+)", flags=re.M)
#: A flag at the start of a code span: `--mirror DIR_OR_URL`, `-o FILE`, `--offline`.
_FLAG_RE = re.compile(r"`(--?[a-z0-9][a-z0-9-]*)")


def documented_flags(command: str) -> set[str]:
    """The flags in the first column of ``command``'s table (header and separator rows aside)."""
    page = REPO / "docs" / PAGES[command]
    tables = [m[2] for m in _TABLE_RE.finditer(page.read_text()) if m[1] == command]
    assert len(tables) == 1, f"docs/{PAGES[command]} needs one table after <!-- flags: {command} -->"
    flags: set[str] = set()
    for row in tables[0].splitlines()[2:]:
        first_cell = re.split(r"(?<!\\)\|", row)[1]  # a `|` inside a cell is written `\|`
        found = _FLAG_RE.findall(first_cell)
        assert found, f"docs/{PAGES[command]}: a row of the {command} table names no flag: {row}"
        flags.update(found)
    return flags


def parser_flags(parser: argparse.ArgumentParser) -> set[str]:
    """Every option string the parser accepts, --help aside."""
    return {s for action in parser._actions for s in action.option_strings if s not in ("-h", "--help")}


def test_every_command_with_flags_has_a_table() -> None:
    """A command that takes flags has its table on a page (a new command without one fails here); versions takes none."""
    with_flags = {name for name, sub in cli.subcommands(cli.build_parser()).items() if parser_flags(sub)}
    assert with_flags == set(PAGES)


@pytest.mark.parametrize("command", sorted(PAGES))
def test_the_flag_table_matches_the_parser_both_ways(command: str) -> None:
    """Every flag the parser takes is in the command's table, and every flag in the table is one the parser takes."""
    parser = cli.subcommands(cli.build_parser())[command]
    documented, actual = documented_flags(command), parser_flags(parser)
    page = f"docs/{PAGES[command]}"
    assert not actual - documented, f"{page}: {command} flags missing from its table: {sorted(actual - documented)}"
    assert not documented - actual, f"{page}: {command}'s table names flags it does not take: {sorted(documented - actual)}"
