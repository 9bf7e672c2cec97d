"""The package schema other languages' SDKs are generated from: ``calico-oke:index:Calico`` (a component, every
CalicoArgs input and Calico output) and the component's own steps (custom resources of calico-oke's provider)."""

from __future__ import annotations

from typing import Any

from ..component.calico import TYPE_TOKEN, Calico
from ..component.inputs import Spec, input_specs, output_specs
from ..steps.types import PACKAGE, STEP_TYPES, Field, StepType, package_version

DESCRIPTION = ("Calico network policy on Oracle OKE, every manifest object a managed resource: flannel removed when "
               "the cluster uses it, the upstream manifest verified and edited as Oracle documents.")


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


def _field(field: Field) -> dict[str, Any]:
    prop: dict[str, Any] = {"type": field.kind, "description": field.description}
    if field.items:
        prop["items"] = {"type": field.items}
    if field.secret:
        prop["secret"] = True
    return prop


def _step(step: StepType) -> dict[str, Any]:
    return {
        "description": step.description,
        "inputProperties": {f.key: _field(f) for f in step.inputs},
        "requiredInputs": [f.key for f in step.inputs if f.required],
        "properties": {f.key: _field(f) for f in step.fields},
        "required": [f.key for f in step.inputs if f.required],
    }


def schema() -> dict[str, Any]:
    """The package schema, under the installed distribution's version."""
    inputs, outputs = input_specs(), output_specs()
    return {
        "name": PACKAGE,
        "displayName": "Calico for Oracle OKE",
        "version": package_version(),
        "description": DESCRIPTION,
        "keywords": ["kubernetes", "oci", "oke", "calico", "networkpolicy", "category/network", "kind/component"],
        "license": "Apache-2.0",
        "resources": {
            TYPE_TOKEN: {
                "isComponent": True,
                "description": (Calico.__doc__ or "").strip(),
                "inputProperties": {s.key: _property(s) for s in inputs},
                "requiredInputs": [s.key for s in inputs if not s.optional],
                "properties": {s.key: _property(s) for s in outputs},
                "required": [s.key for s in outputs if not s.optional],
            },
            **{step.token: _step(step) for step in STEP_TYPES},
        },
    }
