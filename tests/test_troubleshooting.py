"""docs/troubleshooting.md against the code both ways: every quote is a message printed, every error class has an entry."""

from __future__ import annotations

import ast
import functools
import importlib
import pkgutil
import re

import calico_component
from calico_component.errors import CalicoError
from tests.conftest import REPO

PAGE = REPO / "docs" / "troubleshooting.md"
#: Messages the page quotes from the Pulumi engine rather than from calico-oke; tests/e2e/test_readme_program.py
#: checks that the engine prints them.
#: The engine's, not calico-oke's: without the Pulumi.yaml entry, when it may download plugins (a user's default) and
#: when it may not (PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION).
DOWNLOAD_FAILED = "Could not automatically download and install resource plugin 'pulumi-resource-calico-oke'"
NOT_FOUND = "no resource plugin 'pulumi-resource-calico-oke' found in the workspace"
ENGINE_MESSAGES = (DOWNLOAD_FAILED, NOT_FOUND)
#: Where the page leaves out the part of a message that varies.
ELIDED = "..."
#: How much fixed text a quote must have to say which message it is.
DISTINCTIVE = 10


def _prose(text: str) -> str:
    """The page without fenced blocks, and without inline code holding a double quote (a command, not a message)."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", lambda span: "" if '"' in span[0] else span[0], text)


def quotes(text: str) -> list[str]:
    """The messages a page quotes: every double-quoted text of its prose (within a paragraph, wrapped lines joined)."""
    return [" ".join(q.split()) for q in re.findall(r'"((?:[^"\n]|\n(?!\n))+)"', _prose(text))]


def entries(text: str) -> dict[str, str]:
    """Each entry (a ``###`` heading) and its text up to the next heading of any level."""
    parts = re.split(r"^(#{1,3} .+)$", _prose(text), flags=re.M)
    return {heading: body for heading, body in zip(parts[1::2], parts[2::2], strict=True) if heading.startswith("### ")}


def _text(node: ast.JoinedStr) -> str:
    """An f-string's text with each replacement field as a NUL."""
    return "".join(str(v.value) if isinstance(v, ast.Constant) else "\0" for v in node.values)


def strings_of(source: str, filename: str = "<source>") -> list[str]:
    """Every string literal and f-string (implicit concatenation joined, fields as NUL) of ``source`` that the code
    can print: docstrings and other bare string statements say nothing to a user, so they are left out."""
    tree = ast.parse(source, filename)
    bare = {id(node) for stmt in ast.walk(tree)
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant | ast.JoinedStr)
            for node in ast.walk(stmt.value)}
    found: list[str] = []
    for node in ast.walk(tree):
        if id(node) in bare:
            continue
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.append(node.value)
        elif isinstance(node, ast.JoinedStr):
            found.append(_text(node))
    return found


@functools.cache
def code_strings() -> tuple[str, ...]:
    """The strings of calico_component's code that it can print (``strings_of`` each module)."""
    return tuple(s for path in sorted((REPO / "calico_component").rglob("*.py"))
                 for s in strings_of(path.read_text(), str(path)))


def pattern(quote: str) -> re.Pattern[str]:
    """The quote as a search: its fixed parts in order, anything (a field, an elided part) between them."""
    return re.compile(".*?".join(re.escape(part) for part in quote.split(ELIDED)), flags=re.S)


def in_code(quote: str) -> bool:
    """Whether one string of the code holds the quote's fixed parts, in order."""
    search = pattern(quote)
    return any(search.search(s) for s in code_strings())


def error_classes() -> set[str]:
    """Names of every CalicoError subclass defined in calico_component (each module imported to define them)."""
    for module in pkgutil.walk_packages(calico_component.__path__, "calico_component."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    found, todo = set(), list(CalicoError.__subclasses__())
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if cls.__module__.startswith("calico_component."):
            found.add(cls.__name__)
    return found


def test_every_quoted_message_is_printed_by_the_code() -> None:
    """Each quote on the page (`...` for what varies) is in one string of calico_component, or one of the engine's."""
    found = quotes(PAGE.read_text())
    assert len(found) >= 60, found
    missing = [q for q in found if q not in ENGINE_MESSAGES and not in_code(q)]
    assert not missing, f"docs/troubleshooting.md quotes text no code prints: {missing}"
    vague = [q for q in found if len(q.replace(ELIDED, "").strip()) < DISTINCTIVE]
    assert not vague, f"quotes too short to say which message they are: {vague}"


def test_engine_messages_are_quoted_where_the_page_says_so() -> None:
    """The engine's messages the page quotes appear in an entry headed as the engine's (``Pulumi:``)."""
    headings = [h for h in entries(PAGE.read_text()) if h.startswith("### Pulumi: ")]
    for message in ENGINE_MESSAGES:
        assert any(f'"{message}"' in h for h in headings), message


def test_every_entry_quotes_a_message() -> None:
    """Each entry's heading or text quotes the message it is about, so a reader can find it by the words they see."""
    for heading, body in entries(PAGE.read_text()).items():
        assert quotes(heading) or quotes(body), heading


def test_every_error_class_has_an_entry_naming_it() -> None:
    """Each CalicoError subclass is named (`ClassName`) in an entry, and the base class on the page."""
    text = PAGE.read_text()
    named = set(re.findall(r"`(\w+)`", "".join(entries(text).values())))
    classes = error_classes()
    assert {"OwnershipError", "TwoClustersError", "OciApiError", "OperationStoppedError"} <= classes
    assert not classes - named, f"docs/troubleshooting.md has no entry naming {sorted(classes - named)}"
    assert "`CalicoError`" in text


def test_the_checks_can_fail() -> None:
    """The matching is not vacuous: a reworded message, a field where the page has fixed text, a made-up class fail."""
    assert in_code("another network provider runs on this cluster")
    assert not in_code("another network provider is running on this cluster")
    assert in_code("cluster ... already has ... worker node(s)")
    assert not in_code("cluster 3 already has ... worker node(s)")
    assert "NoSuchError" not in error_classes()
    # a docstring or a bare string statement is not a message; the same words raised are
    sample = 'def f():\n    """Docstring words."""\n    "Bare words."\n    f"Bare {1} f-string."\n' \
             '    raise ValueError("Raised words " f"and {2} more")\n'
    found = strings_of(sample)
    assert "Raised words and \0 more" in found and not [s for s in found if "Bare" in s or "Docstring" in s]
    from calico_component.cluster import status

    doc = " ".join(str(status.report.__doc__).split())
    assert str(status.report.__doc__) in (REPO / "calico_component" / "cluster" / "status.py").read_text()
    assert len(doc) >= DISTINCTIVE and not in_code(doc)
