"""The Pulumi package: its schema matches CalicoArgs and Calico, and construct maps camelCase inputs to the component."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from typing import Any

import pulumi
import pytest
from pulumi.errors import InputPropertiesError, InputPropertyError

from calico_component import Calico, CalicoArgs
from calico_component.component.inputs import args_from_config, args_from_inputs
from calico_component.errors import InputError
from calico_component.provider.schema import schema
from calico_component.provider.server import CalicoProvider
from calico_component.steps.types import STEP_TYPES
from tests.conftest import kubeconfig_text, mirror_path
from tests.test_component import Recorder

#: No cluster here: the component's ownership check only records what it was asked (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("ownership_checks")

TOKEN = "calico-oke:index:Calico"
# The contract of issue 14: the names other languages see.
DOCUMENTED_INPUTS = {
    "calicoVersion", "networkType", "nodeOs", "clusterId", "kubeconfig", "removeFlannel", "allowExistingNodes",
    "adoptExisting", "disableFlannelAddon", "manifestMirror", "manifestSha256", "imageRegistry", "podCidr", "typha",
    "typhaReplicas", "skipAwait", "awaitTimeoutSeconds", "forceConflicts", "strictVersionCheck", "kubernetesVersion",
    "ociRegion", "ociProfile", "ociAuth", "ociEndpoint", "addonTimeoutSeconds", "manifestTimeoutSeconds",
    "verifyPolicy", "verifyPolicyNodes", "calicoNodeMaxUnavailable", "skipClusterChecks", "ociConfigFile",
}
DOCUMENTED_OUTPUTS = ["calicoVersion", "networkType", "nodeOs", "manifestUrl", "manifestSha256", "objectCount",
                      "resourceNames", "typhaEnabled", "podCidr", "policyCheck"]
# How each annotation CalicoArgs may use reads in a schema, written here independently of calico_component.component.inputs.
SCHEMA_TYPES = {"str": "string", "bool": "boolean", "int": "integer", "float": "number"}


def _camel(name: str) -> str:
    return re.sub(r"_([a-z0-9])", lambda m: m[1].upper(), name)


def _expected(annotation: str) -> tuple[str, bool, bool]:
    """(schema type, optional?, plain?) of a CalicoArgs annotation string such as 'pulumi.Input[str] | None'."""
    optional = annotation.endswith(" | None")
    base = annotation.removesuffix(" | None")
    wrapped = re.fullmatch(r"pulumi\.Input\[(\w+)\]", base)
    return SCHEMA_TYPES[wrapped[1] if wrapped else base], optional, wrapped is None


@pytest.fixture(scope="module")
def resource() -> dict[str, Any]:
    return dict(schema()["resources"][TOKEN])


def test_every_calicoargs_field_is_in_the_schema_with_its_type_and_default(resource: dict[str, Any]) -> None:
    """A CalicoArgs field missing from the schema, or with another type, default or plainness there, fails this."""
    inputs = resource["inputProperties"]
    fields = dataclasses.fields(CalicoArgs)
    assert sorted(inputs) == sorted(_camel(f.name) for f in fields)
    for f in fields:
        prop = inputs[_camel(f.name)]
        kind, optional, plain = _expected(str(f.type))
        assert prop["type"] == kind, f.name
        assert prop.get("plain", False) == plain, f.name
        if f.default is dataclasses.MISSING:
            assert _camel(f.name) in resource["requiredInputs"] and not optional
        elif f.default is None:
            assert "default" not in prop, f.name
        else:
            assert prop["default"] == f.default and type(prop["default"]) is type(f.default), f.name
    assert resource["requiredInputs"] == ["calicoVersion"]


def test_schema_names_are_the_documented_camelcase_ones(resource: dict[str, Any]) -> None:
    """YAML, TypeScript and Go users see exactly the camelCase inputs and outputs the README documents."""
    assert set(resource["inputProperties"]) >= DOCUMENTED_INPUTS
    assert set(resource["inputProperties"]) - DOCUMENTED_INPUTS <= {"flannelAddonName", "manifestOffline"}
    assert list(resource["properties"]) == DOCUMENTED_OUTPUTS
    assert resource["isComponent"] is True
    assert set(resource["required"]) == set(DOCUMENTED_OUTPUTS) - {"podCidr", "policyCheck"}
    assert resource["properties"]["resourceNames"]["items"] == {"type": "string"}
    assert resource["properties"]["objectCount"]["type"] == "integer"


def test_every_input_and_output_has_a_description_in_camelcase(resource: dict[str, Any]) -> None:
    """Each property documents itself, and refers to other inputs by the names a non-Python user writes."""
    props = [*resource["inputProperties"].values(), *resource["properties"].values()]
    assert all(len(p["description"]) > 15 for p in props)
    text = " ".join(p["description"] for p in props)
    assert "`typha_replicas`" not in text and "`typhaReplicas`" in text
    assert "`clusterId`" in text and "`manifestSha256`" in text


def test_kubeconfig_is_secret_and_allowed_values_are_listed(resource: dict[str, Any]) -> None:
    """The kubeconfig is a secret input; networkType, nodeOs, typha and ociAuth list their allowed values."""
    inputs = resource["inputProperties"]
    assert inputs["kubeconfig"]["secret"] is True
    assert [k for k, p in inputs.items() if p.get("secret")] == ["kubeconfig"]
    expected = {"networkType": ["flannel-overlay", "vcn-native"],
                "nodeOs": ["oracle-linux-7", "oracle-linux-8", "oracle-linux-9"],
                "typha": ["auto", "on", "off"],
                "ociAuth": ["api_key", "instance_principal", "resource_principal"]}
    for key, values in expected.items():
        assert inputs[key]["description"].endswith(f"One of: {', '.join(values)}."), key
    assert inputs["typha"]["default"] == "auto"


def test_args_from_inputs_maps_camelcase_to_calicoargs() -> None:
    """Inputs a YAML or TypeScript program sends (integers as floats) become the same CalicoArgs a Python user writes."""
    args = args_from_inputs({"calicoVersion": "3.28.0", "networkType": "flannel-overlay", "nodeOs": "oracle-linux-9",
                             "typhaReplicas": 3.0, "awaitTimeoutSeconds": 20.0, "allowExistingNodes": True,
                             "manifestSha256": "ab" * 32, "ociAuth": "instance_principal", "podCidr": None})
    assert args == CalicoArgs(calico_version="3.28.0", network_type="flannel-overlay", node_os="oracle-linux-9",
                              typha_replicas=3, await_timeout_seconds=20.0, allow_existing_nodes=True,
                              manifest_sha256="ab" * 32, oci_auth="instance_principal")
    assert type(args.typha_replicas) is int


@pytest.mark.parametrize(("inputs", "key", "reason"), [
    ({"networkType": "vcn-native"}, "calicoVersion", "is required"),
    ({"calicoVersion": "3.28.0", "typhaReplicas": 2.5}, "typhaReplicas", "whole number, got 2.5"),
    ({"calicoVersion": "3.28.0", "calico_version": "3.28.0"}, "calico_version", "is not an input of Calico"),
])
def test_args_from_inputs_errors_name_the_input(inputs: dict[str, Any], key: str, reason: str) -> None:
    """A missing required input, a fractional integer or an unknown name fails naming the key and what is wrong."""
    with pytest.raises(InputError) as info:
        args_from_inputs(inputs)
    assert info.value.key == key and reason in info.value.reason


def test_stack_program_config_keys_are_the_schema_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    """`pulumi config` reads one key per input under the same camelCase names, typed, with the kubeconfig secret."""
    config = {"calicoVersion": "3.29.2", "networkType": "flannel-overlay", "typhaReplicas": "2", "skipAwait": "true",
              "awaitTimeoutSeconds": "45.5", "manifestOffline": "true", "ociAuth": "resource_principal",
              "kubeconfig": "kc"}
    pulumi.runtime.set_all_config({f"calico-oke:{k}": v for k, v in config.items()}, ["calico-oke:kubeconfig"])
    try:
        args = args_from_config(pulumi.Config("calico-oke"))
    finally:
        pulumi.runtime.set_all_config({})
    assert isinstance(args.kubeconfig, pulumi.Output)
    assert dataclasses.replace(args, kubeconfig=None) == CalicoArgs(
        calico_version="3.29.2", network_type="flannel-overlay", typha_replicas=2, skip_await=True,
        await_timeout_seconds=45.5, manifest_offline=True, oci_auth="resource_principal")


@pytest.fixture()
def mocks() -> Iterator[Recorder]:
    rec = Recorder()
    pulumi.runtime.set_mocks(rec, preview=False)
    yield rec


@pulumi.runtime.test
def test_construct_builds_one_calico_with_camelcase_state(mocks: Recorder) -> Any:
    """construct registers Calico itself (its URN is the component's, no wrapper type) and answers camelCase outputs."""
    result = CalicoProvider().construct("calico", TOKEN, {
        "calicoVersion": "3.28.0", "networkType": "vcn-native", "nodeOs": "oracle-linux-8",
        "manifestMirror": str(mirror_path()), "kubeconfig": pulumi.Output.secret(kubeconfig_text())})

    def check(values: list[Any]) -> None:
        version, count, typha, urn = values
        assert (version, count, typha) == ("3.28.0", 34, True)
        assert urn.endswith(f"{TOKEN}::calico") and urn.count(TOKEN) == 1

    assert list(result.state) == DOCUMENTED_OUTPUTS
    state = result.state
    return pulumi.Output.all(state["calicoVersion"], state["objectCount"], state["typhaEnabled"],
                             result.urn).apply(check)


def test_construct_reports_a_bad_value_as_the_users_error(mocks: Recorder) -> None:
    """A bad networkType fails construct with the component's one-line message naming the value, not a traceback."""
    with pytest.raises(InputPropertiesError) as info:
        CalicoProvider().construct("calico", TOKEN, {"calicoVersion": "3.28.0", "networkType": "calico-overlay",
                                                     "nodeOs": "oracle-linux-8"})
    assert "'calico-overlay'" in info.value.message and "\n" not in info.value.message
    assert "flannel-overlay" in info.value.message and "vcn-native" in info.value.message
    assert info.value.errors == [{"property_path": "networkType", "reason": info.value.message}]


def test_construct_reports_a_missing_input_on_its_property() -> None:
    """A missing calicoVersion is a property error on calicoVersion, raised before anything is registered."""
    with pytest.raises(InputPropertyError) as info:
        CalicoProvider().construct("calico", TOKEN, {"networkType": "vcn-native"})
    assert info.value.property_path == "calicoVersion"


def test_construct_refuses_another_type_with_a_property_error() -> None:
    """A type token other than Calico's is refused with a property error, which pulumi's server needs to report it."""
    with pytest.raises(InputPropertiesError) as info:
        CalicoProvider().construct("x", "calico-oke:index:Other", {"calicoVersion": "3.28.0"})
    assert "calico-oke:index:Other" in info.value.message and TOKEN in info.value.message
    assert info.value.errors and info.value.errors[0]["reason"] == info.value.message


def test_calico_class_is_hosted_as_is_beside_the_components_steps() -> None:
    """The plugin hosts the very class Python programs use, under the documented type token, and describes each of
    the component's steps as a custom resource with typed inputs, the kubeconfig secret."""
    from calico_component.component import calico as component

    assert Calico is component.Calico and component.TYPE_TOKEN == TOKEN
    resources = schema()["resources"]
    assert schema()["name"] == "calico-oke" and list(resources) == [TOKEN, *(s.token for s in STEP_TYPES)]
    rollout = resources["calico-oke:index:RolloutAwaited"]
    assert rollout["inputProperties"]["deadlineSeconds"]["type"] == "number"
    assert rollout["inputProperties"]["kubeconfig"]["secret"] is True and "isComponent" not in rollout
    assert resources["calico-oke:index:OkeAddonDisabled"]["inputProperties"]["existingNodeCount"]["type"] == "integer"


def test_reading_input_descriptions_survives_cpythons_spurious_ast_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """CPython 3.11's parser can fail once with "AST constructor recursion depth mismatch" when another thread parses
    at the same moment: the descriptions are still read (retried); any other SystemError is not hidden."""
    import ast

    from calico_component.component import inputs
    from calico_component.component.args import CalicoArgs

    real = ast.parse
    failures = ["SystemError: AST constructor recursion depth mismatch (before=210, after=265)"]

    def flaky(*args: Any, **kwargs: Any) -> Any:
        if failures:
            raise SystemError(failures.pop())
        return real(*args, **kwargs)

    monkeypatch.setattr(ast, "parse", flaky)
    docs = inputs._docstrings(CalicoArgs)
    assert failures == [] and docs["calico_version"].startswith("Calico release to install")
    failures.append("some other interpreter failure")
    with pytest.raises(SystemError, match="some other interpreter failure"):
        inputs._docstrings(CalicoArgs)
