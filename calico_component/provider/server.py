"""calico-oke as a Pulumi package: the schema other languages' SDKs are generated from, and the plugin that hosts Calico.

The plugin folder (``plugin/PulumiPlugin.yaml``, ``runtime: python``) runs :func:`main`. Each
``calico-oke:index:Calico`` a YAML, TypeScript, Go or C# program declares is constructed here
as the same :class:`~calico_component.component.calico.Calico` Python programs use: one component per
install, its children registered by this process.
"""

from __future__ import annotations

import json
import sys
from importlib import metadata
from typing import Any

import pulumi
import pulumi.provider as pulumi_provider
from pulumi.errors import InputPropertiesError, InputPropertyError

from ..component.calico import TYPE_TOKEN, Calico
from ..component.inputs import InputError, Spec, args_from_inputs, input_specs, output_specs, outputs_of
from ..errors import CalicoError

PACKAGE = "calico-oke"
DESCRIPTION = ("Calico network policy on Oracle OKE, every manifest object a managed resource: flannel removed when "
               "the cluster uses it, the upstream manifest verified and edited as Oracle documents.")


def version() -> str:
    """The installed calico-oke distribution's version (the package's version)."""
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return "0.0.0"


def _property(spec: Spec) -> dict[str, Any]:
    # Allowed values are listed in the description, not as schema enums: an enum would make Pulumi YAML reject
    # a bad value with its own type error before the component could name the value and what it means.
    prop: dict[str, Any] = {"type": spec.kind, "description": spec.description}
    if spec.choices:
        prop["description"] += f" One of: {', '.join(spec.choices)}."
    if spec.items:
        prop["items"] = {"type": spec.items}
    if spec.default is not None:
        prop["default"] = spec.default
    if spec.plain:
        prop["plain"] = True
    if spec.secret:
        prop["secret"] = True
    return prop


def schema() -> dict[str, Any]:
    """The package schema: ``calico-oke:index:Calico`` with every CalicoArgs input and every Calico output."""
    inputs, outputs = input_specs(), output_specs()
    doc = (Calico.__doc__ or "").strip()
    return {
        "name": PACKAGE,
        "displayName": "Calico for Oracle OKE",
        "version": version(),
        "description": DESCRIPTION,
        "keywords": ["kubernetes", "oci", "oke", "calico", "networkpolicy", "category/network", "kind/component"],
        "license": "Apache-2.0",
        "resources": {
            TYPE_TOKEN: {
                "isComponent": True,
                "description": doc,
                "inputProperties": {s.key: _property(s) for s in inputs},
                "requiredInputs": [s.key for s in inputs if not s.optional],
                "properties": {s.key: _property(s) for s in outputs},
                "required": [s.key for s in outputs if not s.optional],
            },
        },
    }


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _culprit(message: str, inputs: pulumi.Inputs) -> str:
    """The input a component error is about: the one whose value it quotes (errors name the bad value), else ""."""
    quoted = [key for key, value in inputs.items() if isinstance(value, str) and value and repr(value) in message]
    return quoted[0] if len(quoted) == 1 else ""


def _invalid(message: str, culprit: str = "") -> InputPropertiesError:
    """An error the engine shows as the user's. Always with a property error: without one, pulumi 3.272's provider
    server fails to build the gRPC status and the user sees its traceback instead."""
    return InputPropertiesError(message, [{"property_path": culprit, "reason": message}])


class CalicoProvider(pulumi_provider.Provider):
    """Constructs Calico components for programs in any language (a component provider: no custom resources)."""

    def __init__(self) -> None:
        super().__init__(version(), json.dumps(schema()))

    def construct(self, name: str, resource_type: str, inputs: pulumi.Inputs,
                  options: pulumi.ResourceOptions | None = None) -> pulumi_provider.ConstructResult:
        """Build Calico from camelCase inputs; a bad input fails as the user's error, without a Python traceback."""
        if resource_type != TYPE_TOKEN:
            raise _invalid(f"{PACKAGE} provides only {TYPE_TOKEN}, not {resource_type}")
        try:
            args = args_from_inputs(inputs)
        except InputError as exc:
            raise InputPropertyError(exc.key, _one_line(exc)) from None
        try:
            calico = Calico(name, args, options)
        except CalicoError as exc:
            message = _one_line(exc)
            raise _invalid(message, _culprit(message, inputs)) from exc
        return pulumi_provider.ConstructResult(urn=calico.urn, state=outputs_of(calico))


def main(argv: list[str] | None = None) -> None:
    """Serve the plugin (what ``plugin/__main__.py`` runs; the engine passes its address as the argument)."""
    pulumi_provider.main(CalicoProvider(), sys.argv[1:] if argv is None else argv)
