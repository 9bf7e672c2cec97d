"""calico-oke's provider as the engine talks to it, called in-process with the engine's wire format: numbers typed,
unknowns known to be unknown, secrets kept, 0.1.0 state moved over without running a step, errors as their message,
and Cancel stopping a running step."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from google.protobuf import struct_pb2
from pulumi.runtime.proto import provider_pb2

from calico_component.errors import OperationStoppedError
from calico_component.provider import wire
from calico_component.provider.server import STEPS, CalicoProvider, Servicer
from calico_component.steps.handler import Operation, Props, Step
from calico_component.steps.types import OKE_ADDON_DISABLED, ROLLOUT_AWAITED, UNKNOWN
from tests.conftest import kubeconfig_text

URN_ADDON = "urn:pulumi:dev::p::calico-oke:index:Calico$calico-oke:index:OkeAddonDisabled::calico-flannel-addon"
URN_WAIT = "urn:pulumi:dev::p::calico-oke:index:Calico$calico-oke:index:RolloutAwaited::calico-calico-node-rollout"


class AbortedError(Exception):
    """What the gRPC context's abort raises."""

    def __init__(self, code: Any, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class Context:
    async def abort(self, code: Any, message: str) -> None:
        raise AbortedError(code, message)


def _servicer() -> Servicer:
    return Servicer(CalicoProvider(), [], "127.0.0.1:1")  # no engine there: log lines are dropped


def _struct(props: dict[str, Any], secrets: tuple[str, ...] = ()) -> struct_pb2.Struct:
    return wire.encode(props, secrets)


def test_the_wire_keeps_unknowns_and_secrets_apart_from_values() -> None:
    """The engine's unknown marker decodes as UNKNOWN (not a string), a secret's value is unwrapped with its key
    remembered, an output value without a value is unknown, and secret keys are wrapped again on the way out."""
    struct = struct_pb2.Struct()
    struct.update({"kubeconfig": {wire.SIG_KEY: wire.SECRET_SIG, "value": "text"},
                   "clusterId": wire.UNKNOWN_MARKER, "existingNodeCount": 3,
                   "later": {wire.SIG_KEY: wire.OUTPUT_SIG, "secret": True}})
    values, secrets = wire.decode(struct)
    assert values == {"kubeconfig": "text", "clusterId": UNKNOWN, "existingNodeCount": 3.0, "later": UNKNOWN}
    assert secrets == {"kubeconfig", "later"}
    encoded = wire.encode({"kubeconfig": "text", "pods": 3}, ["kubeconfig"])
    assert dict(encoded.fields["kubeconfig"].struct_value.fields)[wire.SIG_KEY].string_value == wire.SECRET_SIG
    assert encoded.fields["pods"].number_value == 3.0


def _addon(**kw: Any) -> dict[str, Any]:
    return {"clusterId": "ocid1.cluster.oc1..x", "addonName": "Flannel", "allowExistingNodes": False, **kw}


def test_check_types_numbers_refuses_existing_nodes_and_waits_for_unknowns() -> None:
    """A node count crosses the wire as 3.0: Check makes it 3 and refuses a first create on a cluster with nodes (the
    refusal names the count); allowed, or with the count unknown at preview, it passes; a fraction is a type error on
    that property."""
    servicer, context = _servicer(), Context()

    def check(news: dict[str, Any]) -> Any:
        request = provider_pb2.CheckRequest(urn=URN_ADDON, olds=_struct({}), news=_struct(news))
        return asyncio.run(servicer.Check(request, context))

    refused = check(_addon(existingNodeCount=3))
    assert [f.property for f in refused.failures] == ["existingNodeCount"]
    assert "already has 3 worker node(s)" in refused.failures[0].reason
    assert refused.inputs.fields["existingNodeCount"].number_value == 3
    assert not check(_addon(existingNodeCount=3, allowExistingNodes=True)).failures
    assert not check(_addon(existingNodeCount=0)).failures
    assert not check(_addon(existingNodeCount=wire.UNKNOWN_MARKER)).failures
    fraction = check(_addon(existingNodeCount=2.5))
    assert [(f.property, f.reason) for f in fraction.failures] == [("existingNodeCount", "must be a whole number, got 2.5")]


def test_state_of_0_1_0_moves_over_without_running_its_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """A rollout wait recorded by 0.1.0 (snake_case, its pickled provider): Diff reports an update that deletes
    ``__provider``, and Update with unchanged inputs writes this release's state without waiting; with a new template
    it waits as any update does."""
    servicer, context = _servicer(), Context()
    waited: list[Props] = []

    def fake_update(olds: Props, news: Props, op: Operation) -> Props:
        waited.append(news)
        return news

    monkeypatch.setattr(STEPS[ROLLOUT_AWAITED.token], "update", fake_update)
    legacy = {"kubeconfig": kubeconfig_text(), "namespace": "kube-system", "name": "calico-node", "trigger": "t1",
              "deadline_seconds": 600.0, "pods": 3.0, "__provider": "gASV..."}
    news = {"kubeconfig": kubeconfig_text(), "namespace": "kube-system", "name": "calico-node", "trigger": "t1",
            "deadlineSeconds": 600.0}
    diff = asyncio.run(servicer.Diff(provider_pb2.DiffRequest(urn=URN_WAIT, olds=_struct(legacy, ("kubeconfig",)),
                                                              news=_struct(news, ("kubeconfig",))), context))
    assert diff.changes == provider_pb2.DiffResponse.DIFF_SOME and list(diff.diffs) == ["__provider"]
    assert diff.detailedDiff["__provider"].kind == provider_pb2.PropertyDiff.DELETE and not diff.replaces
    update = asyncio.run(servicer.Update(provider_pb2.UpdateRequest(urn=URN_WAIT, olds=_struct(legacy, ("kubeconfig",)),
                                                                    news=_struct(news, ("kubeconfig",))), context))
    state, secrets = wire.decode(update.properties)
    assert waited == [] and "__provider" not in state and state["pods"] == 3 and state["trigger"] == "t1"
    assert "kubeconfig" in secrets
    asyncio.run(servicer.Update(provider_pb2.UpdateRequest(urn=URN_WAIT, olds=_struct(legacy, ("kubeconfig",)),
                                                           news=_struct({**news, "trigger": "t2"})), context))
    assert [w["trigger"] for w in waited] == ["t2"]


class _Failing(Step):
    type = OKE_ADDON_DISABLED

    def __init__(self, error: Exception) -> None:
        self.error = error

    def create(self, news: Props, op: Operation) -> tuple[str, Props]:
        raise self.error


def test_a_steps_error_reaches_the_engine_as_its_message_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """A calico-oke error fails Create with its message and nothing else (no traceback); an unexpected exception
    (calico-oke's bug) names its type and asks for a report, still without a traceback."""
    servicer, context = _servicer(), Context()
    request = provider_pb2.CreateRequest(urn=URN_ADDON, properties=_struct(_addon()))
    monkeypatch.setitem(STEPS, OKE_ADDON_DISABLED.token, _Failing(OperationStoppedError("stopped: run it again")))
    with pytest.raises(AbortedError) as failed:
        asyncio.run(servicer.Create(request, context))
    assert failed.value.message == "stopped: run it again"
    monkeypatch.setitem(STEPS, OKE_ADDON_DISABLED.token, _Failing(KeyError("clusterId")))
    with pytest.raises(AbortedError) as failed:
        asyncio.run(servicer.Create(request, context))
    assert failed.value.message.startswith("calico-oke's provider failed: KeyError: 'clusterId' (a bug")
    assert "Traceback" not in failed.value.message


class _Waiting(Step):
    type = OKE_ADDON_DISABLED

    def create(self, news: Props, op: Operation) -> tuple[str, Props]:
        while True:
            op.pause(0.05)


def test_cancel_stops_a_running_step_at_its_next_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """While a step waits (in a worker thread, so the server keeps answering), the engine's Cancel makes it stop at
    its next pause with the interrupted-`up` message; without Cancel it keeps waiting."""
    servicer, context = _servicer(), Context()
    monkeypatch.setitem(STEPS, OKE_ADDON_DISABLED.token, _Waiting())
    request = provider_pb2.CreateRequest(urn=URN_ADDON, properties=_struct(_addon()))

    async def scenario() -> tuple[bool, float, str]:
        task = asyncio.ensure_future(servicer.Create(request, context))
        await asyncio.sleep(0.5)
        still_waiting = not task.done()
        started = time.monotonic()
        await servicer.Cancel(None, context)
        try:
            await task
        except AbortedError as exc:
            return still_waiting, time.monotonic() - started, exc.message
        return still_waiting, time.monotonic() - started, ""

    still_waiting, took, message = asyncio.run(scenario())
    assert still_waiting and took < 1 and "`pulumi up` was interrupted" in message
    assert servicer.running == 0 and isinstance(servicer.stop, threading.Event)
