"""Resource properties as they cross the engine's gRPC boundary (``google.protobuf.Struct``), to and from Python:
the engine's unknown marker becomes ``UNKNOWN``, a secret is unwrapped and its key remembered, and secret keys are
wrapped again on the way out. Numbers stay floats here; ``steps.types.typed`` gives each its schema type."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf import struct_pb2

from ..steps.types import UNKNOWN

#: The engine's marker for a value not known during preview (pulumi.runtime.rpc.UNKNOWN).
UNKNOWN_MARKER = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
#: The key and values that mark a special object (pulumi.runtime.rpc).
SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
OUTPUT_SIG = "d0e6a833031e9bbcd3f4e8bde6ca49a4"


def _decode(value: struct_pb2.Value) -> tuple[Any, bool]:
    """(Python value, whether it or anything inside it was secret)."""
    kind = value.WhichOneof("kind")
    if kind == "null_value" or kind is None:
        return None, False
    if kind == "bool_value":
        return value.bool_value, False
    if kind == "number_value":
        return value.number_value, False
    if kind == "string_value":
        return (UNKNOWN if value.string_value == UNKNOWN_MARKER else value.string_value), False
    if kind == "list_value":
        items = [_decode(v) for v in value.list_value.values]
        return [v for v, _ in items], any(s for _, s in items)
    fields = value.struct_value.fields
    sig = fields[SIG_KEY].string_value if SIG_KEY in fields else None
    if sig == SECRET_SIG:
        inner, _ = _decode(fields["value"]) if "value" in fields else (UNKNOWN, False)
        return inner, True
    if sig == OUTPUT_SIG:
        inner, secret = _decode(fields["value"]) if "value" in fields else (UNKNOWN, False)
        return inner, secret or ("secret" in fields and fields["secret"].bool_value)
    decoded = {k: _decode(v) for k, v in fields.items()}
    return {k: v for k, (v, _) in decoded.items()}, any(s for _, s in decoded.values())


def decode(struct: struct_pb2.Struct) -> tuple[dict[str, Any], frozenset[str]]:
    """The properties of ``struct`` and the keys that were (or held) secrets."""
    out: dict[str, Any] = {}
    secrets: set[str] = set()
    for key, value in struct.fields.items():
        out[key], secret = _decode(value)
        if secret:
            secrets.add(key)
    return out, frozenset(secrets)


def _encode(value: Any) -> struct_pb2.Value:
    if value is UNKNOWN:
        return struct_pb2.Value(string_value=UNKNOWN_MARKER)
    if value is None:
        return struct_pb2.Value(null_value=struct_pb2.NULL_VALUE)
    if isinstance(value, bool):
        return struct_pb2.Value(bool_value=value)
    if isinstance(value, int | float):
        return struct_pb2.Value(number_value=float(value))
    if isinstance(value, str):
        return struct_pb2.Value(string_value=value)
    if isinstance(value, Mapping):
        return struct_pb2.Value(struct_value=struct_pb2.Struct(fields={str(k): _encode(v) for k, v in value.items()}))
    if isinstance(value, list | tuple):
        return struct_pb2.Value(list_value=struct_pb2.ListValue(values=[_encode(v) for v in value]))
    raise TypeError(f"cannot send a {type(value).__name__} to the engine")


def _secret(value: struct_pb2.Value) -> struct_pb2.Value:
    return struct_pb2.Value(struct_value=struct_pb2.Struct(fields={
        SIG_KEY: struct_pb2.Value(string_value=SECRET_SIG), "value": value}))


def encode(props: Mapping[str, Any], secrets: Iterable[str] = ()) -> struct_pb2.Struct:
    """``props`` as a Struct, the values of ``secrets`` wrapped as secrets (the engine keeps them encrypted)."""
    hidden = set(secrets)
    return struct_pb2.Struct(fields={
        key: _secret(_encode(value)) if key in hidden and value is not None else _encode(value)
        for key, value in props.items()})
