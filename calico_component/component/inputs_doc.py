"""docs/inputs.md, the inputs and outputs reference, written from the same table as the package schema.

Run ``python -m calico_component.component.inputs_doc > docs/inputs.md`` after changing ``CalicoArgs`` or
``Calico``'s outputs; ``tests/test_docs.py`` fails while the file differs from what this prints.
"""

from __future__ import annotations

import sys

from .inputs import Spec, input_specs, output_specs

_HEADER = """\
# Inputs and outputs reference

For: anyone writing a program with the `Calico` component, in Python or through the package
(YAML, TypeScript, Go), or configuring the stack program with `pulumi config set`.

Generated from `calico_component/component/args.py` (each input's docstring) by
`python -m calico_component.component.inputs_doc > docs/inputs.md`; `tests/test_docs.py` fails when this page
and the code differ. The second column is the key in YAML, TypeScript and Go, and the stack
program's `pulumi config` key. *Plain* inputs must be known at preview (not an Output), because they
decide which objects exist.

"""


def _cell(text: str) -> str:
    """Markdown table cell text: pipes escaped."""
    return text.replace("|", "\\|")


def _kind(spec: Spec) -> str:
    """``string``, ``integer``, ... or ``list of string``."""
    return f"list of {spec.items}" if spec.items else spec.kind


def _type(spec: Spec) -> str:
    """The input's type as a user reads it: kind, plain or Output, secret."""
    notes = ["plain" if spec.plain else "Output allowed"] + (["secret"] if spec.secret else [])
    return f"{_kind(spec)} ({', '.join(notes)})"


def _default(spec: Spec) -> str:
    """``required``, ``none``, or the default value in code style."""
    if not spec.optional:
        return "**required**"
    if spec.default is None:
        return "none"
    value = str(spec.default).lower() if isinstance(spec.default, bool) else str(spec.default)
    return f"`{value}`"


def _description(spec: Spec) -> str:
    """The input's description, with its allowed values when it has a fixed set."""
    choices = f" One of: {', '.join(f'`{c}`' for c in spec.choices)}." if spec.choices else ""
    return _cell(spec.description + choices)


def input_rows() -> list[str]:
    """One table row per ``CalicoArgs`` field, in declaration order."""
    return [f"| `{s.name}` | `{s.key}` | {_type(s)} | {_default(s)} | {_description(s)} |" for s in input_specs()]


def output_rows() -> list[str]:
    """One table row per output of ``Calico``."""
    return [f"| `{s.name}` | `{s.key}` | {_kind(s)} | {_cell(s.description)} |" for s in output_specs()]


def markdown() -> str:
    """The whole page."""
    lines = [_HEADER + "## Inputs\n", "| Python | other languages, `pulumi config` | type | default | description |",
             "|---|---|---|---|---|", *input_rows(), "", "## Outputs", "",
             "| Python | other languages | type | description |", "|---|---|---|---|", *output_rows()]
    return "\n".join(lines) + "\n"


def main() -> int:
    """Print the page."""
    sys.stdout.write(markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
