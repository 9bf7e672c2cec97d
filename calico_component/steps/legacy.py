"""State recorded by calico-oke 0.1.0, when these steps were Python dynamic resources: snake_case keys and the
pickled provider (``__provider``). The resources alias that state, and the provider reads it through here, so the
first `up` of this release moves each step over in place, without running it again."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import InputError
from .types import StepType, typed

#: The key a Python dynamic resource keeps its pickled provider under.
PROVIDER_KEY = "__provider"


def is_legacy(state: Mapping[str, Any]) -> bool:
    """Whether ``state`` was recorded by a Python dynamic resource."""
    return PROVIDER_KEY in state


def _camel(key: str) -> str:
    first, *rest = key.split("_")
    return first + "".join(part.capitalize() for part in rest)


def translate(step: StepType, state: Mapping[str, Any]) -> dict[str, Any]:
    """The recorded state in this release's shape: camelCase keys of ``step``'s fields, typed; what the step no longer
    has (the pickled provider, an unused ``context``) is dropped, and a value of the wrong type is left out."""
    camel = {_camel(k): v for k, v in state.items() if k != PROVIDER_KEY}
    out: dict[str, Any] = {}
    for key, value in camel.items():
        try:
            out.update(typed(step, {key: value}))
        except InputError:
            continue
    return out
