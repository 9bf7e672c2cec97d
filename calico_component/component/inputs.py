"""The component's inputs and outputs as one table derived from CalicoArgs and Calico: camelCase keys, types, defaults.

The package schema (``package.py``), the plugin's construct and the stack program's
``pulumi config`` keys all read this table, so a field added to ``CalicoArgs`` (with its
docstring) reaches every language and the stack program without a second list to keep.
"""

from __future__ import annotations

import ast
import collections.abc
import dataclasses
import inspect
import itertools
import re
import textwrap
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

import pulumi

from ..cluster.oci_api import OCI_AUTH_METHODS
from ..errors import InputError
from ..manifest.plan import TYPHA_MODES
from ..manifest.releases import NETWORK_TYPES, NODE_OSES
from .args import CalicoArgs
from .calico import Calico

Kind = Literal["string", "boolean", "integer", "number", "array"]
_KINDS: dict[type, Kind] = {str: "string", bool: "boolean", int: "integer", float: "number", list: "array"}

#: Inputs that take one of a fixed set of strings: the schema lists them in the input's description.
CHOICES: dict[str, tuple[str, ...]] = {
    "network_type": NETWORK_TYPES,
    "node_os": NODE_OSES,
    "typha": TYPHA_MODES,
    "oci_auth": OCI_AUTH_METHODS,
}
#: Inputs kept only as secrets.
SECRETS = frozenset({"kubeconfig"})


@dataclass(frozen=True)
class Spec:
    """One input or output: its Python name, schema key, type, and what a user may omit or pass."""

    name: str
    key: str
    kind: Kind
    optional: bool
    description: str
    #: The value used when the input is omitted (None: nothing, or required when not ``optional``).
    default: Any = None
    #: False when it may be an Output (``pulumi.Input[...]``); true means a value known at preview.
    plain: bool = True
    secret: bool = False
    choices: tuple[str, ...] | None = None
    items: Kind | None = None


def camel(name: str) -> str:
    """``manifest_sha256`` -> ``manifestSha256``."""
    first, *rest = name.split("_")
    return first + "".join(part.capitalize() for part in rest)


#: How often a source parse is tried: CPython 3.11 keeps the AST constructor's recursion counter per interpreter, so a
#: parse racing another thread's (3.11 formats every traceback with one) can fail with a spurious SystemError
#: ("AST constructor recursion depth mismatch", python/cpython#106905); seen once in CI inside a Pulumi program.
_PARSE_ATTEMPTS = 5


def _class_body(cls: type) -> list[ast.stmt]:
    """The statements of ``cls``'s body, from its source."""
    for attempt in range(1, _PARSE_ATTEMPTS + 1):
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
            return next(node for node in tree.body if isinstance(node, ast.ClassDef)).body
        except SystemError as exc:
            if "recursion depth mismatch" not in str(exc) or attempt == _PARSE_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def _docstrings(cls: type) -> dict[str, str]:
    """Attribute docstrings (a string right after an annotated field) of ``cls``, read from its source."""
    body = _class_body(cls)
    docs: dict[str, str] = {}
    for field_node, doc in itertools.pairwise(body):
        if isinstance(field_node, ast.AnnAssign) and isinstance(field_node.target, ast.Name) \
                and isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant) and isinstance(doc.value.value, str):
            docs[field_node.target.id] = " ".join(doc.value.value.split())
    return docs


def _is_output(hint: Any) -> bool:
    # pulumi.Input[T] holds Output[T] as the forward reference "Output[T]".
    return typing.get_origin(hint) is pulumi.Output or (
        isinstance(hint, typing.ForwardRef) and hint.__forward_arg__.startswith("Output["))


def _unwrap(hint: Any) -> tuple[Any, bool, bool]:
    """(plain type, optional?, plain?) of an annotation such as ``pulumi.Input[str] | None`` or ``Output[list[str]]``."""
    optional, plain = False, True
    if typing.get_origin(hint) is pulumi.Output:
        hint, plain = typing.get_args(hint)[0], False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        members = [m for m in typing.get_args(hint) if m is not type(None)]
        optional = len(members) < len(typing.get_args(hint))
        wrapped = [m for m in members if _is_output(m) or typing.get_origin(m) is collections.abc.Awaitable]
        plain = plain and not wrapped
        hint = next(m for m in members if m not in wrapped)
    return hint, optional, plain


def _kind(hint: Any, owner: str) -> tuple[Kind, Kind | None]:
    origin = typing.get_origin(hint) or hint
    if origin not in _KINDS:
        raise TypeError(f"{owner}: {hint!r} has no schema type; add it to calico_component.component.inputs._KINDS")
    items = _kind(typing.get_args(hint)[0], owner)[0] if origin is list else None
    return _KINDS[origin], items


def _describe(text: str, fields: set[str]) -> str:
    """The docstring with each `snake_case` field name it quotes shown as its camelCase key."""
    return re.sub(r"`([a-z][a-z0-9_]*)`", lambda m: f"`{camel(m[1])}`" if m[1] in fields else m[0], text)


@cache
def input_specs() -> tuple[Spec, ...]:
    """Every CalicoArgs field, in declaration order."""
    hints = inspect.get_annotations(CalicoArgs, eval_str=True)
    docs = _docstrings(CalicoArgs)
    names = {f.name for f in dataclasses.fields(CalicoArgs)}
    specs = []
    for f in dataclasses.fields(CalicoArgs):
        hint, optional, plain = _unwrap(hints[f.name])
        kind, items = _kind(hint, f"CalicoArgs.{f.name}")
        if f.name not in docs:
            raise TypeError(f"CalicoArgs.{f.name} has no docstring: it is the input's description in every language")
        has_default = f.default is not dataclasses.MISSING
        specs.append(Spec(f.name, camel(f.name), kind, optional or has_default, _describe(docs[f.name], names),
                          f.default if has_default else None, plain, f.name in SECRETS, CHOICES.get(f.name), items))
    return tuple(specs)


@cache
def output_specs() -> tuple[Spec, ...]:
    """Every output Calico declares (its own annotated attributes), in declaration order."""
    hints = inspect.get_annotations(Calico, eval_str=True)
    docs = _docstrings(Calico)
    specs = []
    for name in Calico.__annotations__:
        hint, optional, _ = _unwrap(hints[name])
        kind, items = _kind(hint, f"Calico.{name}")
        specs.append(Spec(name, camel(name), kind, optional, docs.get(name, ""), plain=False, items=items))
    return tuple(specs)


def _coerce(spec: Spec, value: Any) -> Any:
    """Integers cross the wire as floats: give integer inputs back their type, refusing fractions."""
    if spec.kind == "integer" and isinstance(value, float):
        if not value.is_integer():
            raise InputError(spec.key, f"must be a whole number, got {value:g}")
        return int(value)
    return value


def args_from_inputs(inputs: Mapping[str, Any]) -> CalicoArgs:
    """CalicoArgs from camelCase inputs (a package's construct): unknown keys and a missing required one are errors."""
    specs = {s.key: s for s in input_specs()}
    unknown = sorted(set(inputs) - set(specs))
    if unknown:
        raise InputError(unknown[0], f"is not an input of Calico; inputs are {', '.join(specs)}")
    for spec in specs.values():
        if not spec.optional and inputs.get(spec.key) is None:
            raise InputError(spec.key, f"is required: {spec.description}")
    values = {specs[k].name: _coerce(specs[k], v) for k, v in inputs.items() if v is not None}
    return CalicoArgs(**values)


_CONFIG_GETTERS = {"string": "get", "boolean": "get_bool", "integer": "get_int", "number": "get_float"}


def _config_value(config: pulumi.Config, spec: Spec) -> Any:
    """The value of ``spec``'s key in ``config`` as its type (a secret as a secret Output), or None when the key is
    unset or empty: `pulumi config set manifestMirror "$CALICO_MIRROR"` with the variable unset stores "", which means
    "not set" (never the directory "." nor an empty token), for every key alike."""
    raw = config.get(spec.key)  # the stored text, secret or not
    if raw is None or not raw.strip():
        return None
    getter = "get_secret" if spec.secret else _CONFIG_GETTERS[spec.kind]
    return getattr(config, getter)(spec.key)


def args_from_config(config: pulumi.Config) -> CalicoArgs:
    """CalicoArgs from ``pulumi config``: one key per input (``calicoVersion``, ``nodeOs``, ...), secrets decrypted; an
    empty value counts as unset (``_config_value``), so an empty required key is as missing."""
    values: dict[str, Any] = {}
    for spec in input_specs():
        value = _config_value(config, spec)
        if value is None and not spec.optional:
            raise pulumi.ConfigMissingError(config.full_key(spec.key), spec.secret)
        if value is not None:
            values[spec.name] = value
    return CalicoArgs(**values)


def outputs_of(calico: Calico) -> dict[str, pulumi.Output[Any]]:
    """The component's outputs by camelCase key (the package's state, the stack program's exports)."""
    return {spec.key: getattr(calico, spec.name) for spec in output_specs()}


# Read once at import (normally before a Pulumi program starts any thread), not first in a program's thread.
input_specs()
output_specs()
