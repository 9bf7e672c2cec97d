"""An empty `pulumi config` value means "not set" for every key of the stack program (issue 42 item 3)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pulumi
import pytest

from calico_component.component.args import CalicoArgs
from calico_component.component.inputs import Spec, args_from_config, input_specs
from tests.conftest import REPO, kubeconfig_text
from tests.test_examples import run_program

PROJECT = "calico-oke"
DEFAULTS = {f.name: f.default for f in dataclasses.fields(CalicoArgs) if f.default is not dataclasses.MISSING}
#: A value of each kind that differs from its default (a boolean: the other one), as stored and as read.
GIVEN = {"string": ("given-value", "given-value"), "integer": ("7", 7), "number": ("12.5", 12.5)}
STRINGS = [s for s in input_specs() if s.kind == "string" and s.optional]
OTHERS = [s for s in input_specs() if s.kind != "string"]


@pytest.fixture()
def configure() -> Iterator[type[_Configure]]:
    """Sets the stack's config as `pulumi config set` stores it (the kubeconfig a secret), cleared afterwards."""
    yield _Configure
    pulumi.runtime.set_all_config({})


class _Configure:
    @staticmethod
    def args(**values: str) -> CalicoArgs:
        """CalicoArgs as the stack program reads them from ``values`` (calicoVersion 3.32.0 unless given)."""
        config = {"calicoVersion": "3.32.0", **values}
        pulumi.runtime.set_all_config({f"{PROJECT}:{k}": v for k, v in config.items()}, [f"{PROJECT}:kubeconfig"])
        return args_from_config(pulumi.Config(PROJECT))


def _ids(specs: list[Spec]) -> list[str]:
    return [s.key for s in specs]


@pytest.mark.parametrize("spec", STRINGS, ids=_ids(STRINGS))
def test_a_string_key_set_empty_is_unset_and_a_value_is_used(spec: Spec, configure: type[_Configure]) -> None:
    """Each optional string key: "" and whitespace leave the input at its default; a value reaches the input."""
    for empty in ("", "  "):
        assert getattr(configure.args(**{spec.key: empty}), spec.name) == DEFAULTS[spec.name], repr(empty)
    given = getattr(configure.args(**{spec.key: GIVEN["string"][0]}), spec.name)
    if spec.secret:
        assert isinstance(given, pulumi.Output)  # the kubeconfig: kept a secret Output
    else:
        assert given == GIVEN["string"][1]


@pytest.mark.parametrize("spec", OTHERS, ids=_ids(OTHERS))
def test_a_boolean_or_number_key_set_empty_is_unset_not_a_type_error(spec: Spec,
                                                                    configure: type[_Configure]) -> None:
    """Each boolean and number key: "" leaves the input at its default (no "not a valid bool"); a value is used."""
    assert getattr(configure.args(**{spec.key: ""}), spec.name) == DEFAULTS[spec.name]
    stored, expected = GIVEN.get(spec.kind) or (str(not DEFAULTS[spec.name]).lower(), not DEFAULTS[spec.name])
    assert getattr(configure.args(**{spec.key: stored}), spec.name) == expected != DEFAULTS[spec.name]


def test_an_empty_calico_version_is_as_missing(configure: type[_Configure]) -> None:
    """The one required key set empty fails as a missing key does, naming it and how to set it."""
    with pytest.raises(pulumi.ConfigMissingError) as info:
        configure.args(calicoVersion="")
    assert "calico-oke:calicoVersion" in str(info.value) and "pulumi config set" in str(info.value)


def _stack_program(monkeypatch: pytest.MonkeyPatch, **config: str) -> None:
    run_program(REPO / "__main__.py", PROJECT, {"calicoVersion": "3.32.0", "networkType": "vcn-native",
                                               "nodeOs": "oracle-linux-8", "kubeconfig": kubeconfig_text(),
                                               **config}, monkeypatch)


@pytest.mark.usefixtures("ownership_checks")
def test_the_walkthrough_line_with_calico_mirror_unset_installs_from_the_default_mirror(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The README's `manifestMirror "$CALICO_MIRROR"` with the variable unset renders from the default mirror, not "."."""
    monkeypatch.chdir(tmp_path)
    _stack_program(monkeypatch, manifestMirror="")


@pytest.mark.usefixtures("ownership_checks")
def test_a_manifest_mirror_value_is_the_mirror_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A non-empty manifestMirror is the mirror read: a missing directory fails naming it, though the default would do."""
    missing = tmp_path / "no-such-mirror"
    with pytest.raises(Exception, match=f"mirror directory {missing} does not exist"):
        _stack_program(monkeypatch, manifestMirror=str(missing))
