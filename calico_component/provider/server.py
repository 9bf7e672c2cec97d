"""calico-oke's provider plugin: constructs ``calico-oke:index:Calico`` for programs in any language, and serves the
component's own steps (``steps``) as custom resources, in every language alike.

Two ways the engine starts it: ``pulumi-resource-calico-oke`` (a console script pip installs beside the package, for
Python programs: ``plugins.providers`` in Pulumi.yaml), or the ``plugin/`` folder (``PulumiPlugin.yaml``, for
``packages:`` in YAML, TypeScript and Go programs). Both run :func:`main`.

Construct is the Pulumi SDK's (``pulumi.provider``). The steps' check, diff, create, read, update, delete and cancel
are served here rather than by ``pulumi.provider.experimental``, whose server appends the Python traceback to every
error and takes the engine's unknown marker for a string: here a step's error reaches the user as its message alone,
unknown inputs are known to be unknown, numbers get their schema type, progress lines are attributed to the resource,
the first Ctrl-C (the engine's Cancel) stops a running step, and the process ends when the engine that started it is
gone, however it went.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import grpc
import pulumi
import pulumi.provider as pulumi_provider
from google.protobuf import empty_pb2
from pulumi.errors import InputPropertiesError, InputPropertyError
from pulumi.provider.server import ProviderServicer
from pulumi.runtime._grpc_settings import _GRPC_CHANNEL_OPTIONS
from pulumi.runtime.proto import engine_pb2, engine_pb2_grpc, provider_pb2, provider_pb2_grpc

from ..errors import CalicoError, InputError
from ..steps import legacy
from ..steps.addon import OkeAddonDisabledStep
from ..steps.daemonset import DaemonSetAbsentStep
from ..steps.handler import Diff, Failure, Operation, Props, Step
from ..steps.policy import PolicyCheckStep
from ..steps.rollout import RolloutAwaitedStep
from ..steps.types import PACKAGE, missing, package_version, typed
from . import wire

#: The step behind each resource type the provider serves.
STEPS: dict[str, Step] = {step.type.token: step for step in (
    OkeAddonDisabledStep(), DaemonSetAbsentStep(), RolloutAwaitedStep(), PolicyCheckStep())}
#: Set to 1 to add the Python traceback to an unexpected error's message (a bug report's details).
DEBUG_ENV = "CALICO_OKE_DEBUG"
#: How often the watchdog looks for the engine that started this process, and how long stopped steps may take to
#: clean up (the policy check deletes its namespace) before the process ends without it.
WATCH_SECONDS = 1.0
CLEANUP_SECONDS = 20.0
_T = TypeVar("_T")


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
    """Constructs Calico components for programs in any language (each one registers its steps with this provider).
    The component and the schema are loaded when first asked for: a Python program's `up` starts this process only to
    serve the steps."""

    def __init__(self) -> None:
        super().__init__(package_version(), None)

    def construct(self, name: str, resource_type: str, inputs: pulumi.Inputs,
                  options: pulumi.ResourceOptions | None = None) -> pulumi_provider.ConstructResult:
        """Build Calico from camelCase inputs; a bad input fails as the user's error, without a Python traceback."""
        from ..component.calico import TYPE_TOKEN, Calico
        from ..component.inputs import args_from_inputs, outputs_of

        if resource_type != TYPE_TOKEN:
            raise _invalid(f"{PACKAGE} constructs only {TYPE_TOKEN}, not {resource_type}")
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


def _type_of(urn: str) -> str:
    """The resource type a URN names (``urn:pulumi:stack::project::parent$type::name``)."""
    return urn.split("::")[-2].split("$")[-1] if urn.count("::") >= 3 else ""


def _name_of(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


class _Engine:
    """Lines sent to the engine's log with the resource's URN: `up` shows them under that resource."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._stub: Any = None
        self._lock = threading.Lock()

    def log(self, urn: str, message: str, severity: Any = engine_pb2.INFO) -> None:
        with self._lock:
            if self._stub is None:
                self._stub = engine_pb2_grpc.EngineStub(grpc.insecure_channel(self.address, options=_GRPC_CHANNEL_OPTIONS))
            stub = self._stub
        try:
            stub.Log(engine_pb2.LogRequest(severity=severity, message=message, urn=urn), timeout=10)
        except grpc.RpcError:
            pass  # the engine went away: the watchdog ends this process

    def alive(self) -> bool:
        """Whether the engine still accepts connections on its address (it is gone once nothing listens there)."""
        host, _, port = self.address.rpartition(":")
        try:
            with socket.create_connection((host or "127.0.0.1", int(port)), timeout=2):
                return True
        except (OSError, ValueError):
            return False


class Servicer(ProviderServicer):
    """The engine's view of calico-oke's provider: Construct (the SDK's), and the steps' resource operations."""

    def __init__(self, provider: CalicoProvider, args: list[str], engine_address: str) -> None:
        super().__init__(provider, args, engine_address)
        self.engine = _Engine(engine_address)
        self.stop = threading.Event()
        self.running = 0
        self._count = threading.Lock()

    # --- the provider's own configuration: none ---------------------------------------------------------------------

    async def CheckConfig(self, request: Any, context: Any) -> Any:
        return provider_pb2.CheckResponse(inputs=request.news)

    async def DiffConfig(self, request: Any, context: Any) -> Any:
        return provider_pb2.DiffResponse(changes=provider_pb2.DiffResponse.DIFF_NONE)

    async def GetSchema(self, request: Any, context: Any) -> Any:
        from .schema import schema

        if request.version != 0:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unsupported schema version {request.version}")
        return provider_pb2.GetSchemaResponse(schema=json.dumps(schema()))

    async def Cancel(self, request: Any, context: Any) -> Any:
        """The first Ctrl-C: every running step stops at its next wait (and cleans up after itself)."""
        self.stop.set()
        return empty_pb2.Empty()

    # --- the steps -------------------------------------------------------------------------------------------------

    def _operation(self, urn: str) -> Operation:
        return Operation(stop=self.stop, report=lambda line: self.engine.log(urn, line),
                         warn=lambda line: self.engine.log(urn, line, engine_pb2.WARNING))

    async def _run(self, context: Any, fn: Callable[[], _T]) -> _T:
        """``fn()`` in a worker thread (the server keeps answering, Cancel included); a failure ends the call with its
        message alone (an unexpected one names its type: it is calico-oke's bug)."""
        with self._count:
            self.running += 1
        try:
            return await asyncio.to_thread(fn)
        except CalicoError as exc:
            await context.abort(grpc.StatusCode.UNKNOWN, str(exc))
            raise  # abort raised already
        except Exception as exc:
            detail = f"\n{traceback.format_exc()}" if os.environ.get(DEBUG_ENV) == "1" else ""
            await context.abort(grpc.StatusCode.INTERNAL, f"calico-oke's provider failed: {type(exc).__name__}: "
                                f"{exc} (a bug: please report it, with {DEBUG_ENV}=1 for details){detail}")
            raise
        finally:
            with self._count:
                self.running -= 1

    async def _step(self, urn: str, context: Any) -> Step:
        step = STEPS.get(_type_of(urn))
        if step is None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{PACKAGE}'s provider has no resource type "
                                f"{_type_of(urn)!r}; it serves {', '.join(STEPS)}")
        assert step is not None
        return step

    async def Check(self, request: Any, context: Any) -> Any:
        step = await self._step(request.urn, context)
        news, secrets = wire.decode(request.news)
        olds, _ = wire.decode(request.olds)
        failures: list[Failure] = [Failure(key, f"{key} is required") for key in missing(step.type, news)]
        try:
            news = typed(step.type, news)
        except InputError as exc:
            failures.append(Failure(exc.key, exc.reason))
        if not failures:
            failures = await self._run(context, lambda: step.check(olds or None, news, self._operation(request.urn)))
        return provider_pb2.CheckResponse(
            inputs=wire.encode(news, {*secrets, *step.type.secrets}),
            failures=[provider_pb2.CheckFailure(property=f.key, reason=f.reason) for f in failures])

    def _olds(self, step: Step, state: Mapping[str, Any]) -> Props:
        return legacy.translate(step.type, state) if legacy.is_legacy(state) else typed(step.type, state)

    async def Diff(self, request: Any, context: Any) -> Any:
        step = await self._step(request.urn, context)
        state, _ = wire.decode(request.olds)
        news, _ = wire.decode(request.news)
        found = step.diff(self._olds(step, state), typed(step.type, news))
        if legacy.is_legacy(state):  # the first `up` of this release moves the state over (no step runs for it)
            found = Diff(changes=True, diffs=(*found.diffs, legacy.PROVIDER_KEY), replaces=found.replaces)
        return _diff_response(found)

    async def Create(self, request: Any, context: Any) -> Any:
        step = await self._step(request.urn, context)
        news, secrets = wire.decode(request.properties)
        news = typed(step.type, news)
        resource_id, outs = await self._run(context, lambda: step.create(news, self._operation(request.urn)))
        return provider_pb2.CreateResponse(id=resource_id, properties=wire.encode(outs, {*secrets, *step.type.secrets}))

    async def Read(self, request: Any, context: Any) -> Any:
        step = await self._step(request.urn, context)
        state, secrets = wire.decode(request.properties)
        if legacy.is_legacy(state):
            return provider_pb2.ReadResponse(id=request.id, properties=request.properties, inputs=request.inputs)
        outs = await self._run(context, lambda: step.read(request.id, typed(step.type, state),
                                                          self._operation(request.urn)))
        return provider_pb2.ReadResponse(id=request.id, properties=wire.encode(outs, {*secrets, *step.type.secrets}),
                                         inputs=request.inputs)

    async def Update(self, request: Any, context: Any) -> Any:
        step = await self._step(request.urn, context)
        state, _ = wire.decode(request.olds)
        news, secrets = wire.decode(request.news)
        olds, news = self._olds(step, state), typed(step.type, news)
        if legacy.is_legacy(state) and not step.diff(olds, news).changes:
            outs = {**olds, **news}  # moved over as recorded: nothing on the cluster or in OCI is touched
        else:
            outs = await self._run(context, lambda: step.update(olds, news, self._operation(request.urn)))
        return provider_pb2.UpdateResponse(properties=wire.encode(outs, {*secrets, *step.type.secrets}))

    async def Delete(self, request: Any, context: Any) -> Any:
        step = await self._step(request.urn, context)
        state, _ = wire.decode(request.properties)
        await self._run(context, lambda: step.delete(request.id, self._olds(step, state), self._operation(request.urn)))
        return empty_pb2.Empty()


def _diff_response(found: Diff) -> Any:
    kinds = {key: provider_pb2.PropertyDiff.UPDATE_REPLACE if key in found.replaces else
             provider_pb2.PropertyDiff.DELETE if key == legacy.PROVIDER_KEY else provider_pb2.PropertyDiff.UPDATE
             for key in found.diffs}
    changes = (provider_pb2.DiffResponse.DIFF_UNKNOWN if found.changes is None else
               provider_pb2.DiffResponse.DIFF_SOME if found.changes else provider_pb2.DiffResponse.DIFF_NONE)
    return provider_pb2.DiffResponse(
        changes=changes, replaces=list(found.replaces), diffs=list(found.diffs), deleteBeforeReplace=False,
        detailedDiff={k: provider_pb2.PropertyDiff(kind=v, inputDiff=k not in ("cluster", "rolledOut", "present",
                                                                                "addonState", legacy.PROVIDER_KEY))
                      for k, v in kinds.items()},
        hasDetailedDiff=True)


def _watch(servicer: Servicer, parent: int) -> None:
    """End this process once the engine that started it is gone (it was killed, or exited without stopping this
    plugin): running steps are stopped first and given CLEANUP_SECONDS to clean up."""
    while True:
        time.sleep(WATCH_SECONDS)
        if os.getppid() == parent and servicer.engine.alive():
            continue
        servicer.stop.set()
        deadline = time.monotonic() + CLEANUP_SECONDS
        while servicer.running and time.monotonic() < deadline:
            time.sleep(0.2)
        os._exit(0)


def main(argv: list[str] | None = None) -> None:
    """Serve the plugin: the engine passes its address as the first argument and reads our port from stdout."""
    args = sys.argv[1:] if argv is None else argv
    engine = next((a for a in args if not a.startswith("-")), "")
    if not engine:
        print(f"pulumi-resource-{PACKAGE}: the Pulumi engine starts this provider (with its address); it is not a "
              "command to run yourself. Python programs declare it in Pulumi.yaml (plugins: providers:), see the "
              "README.", file=sys.stderr)
        raise SystemExit(2)

    async def serve() -> None:
        server = grpc.aio.server(options=_GRPC_CHANNEL_OPTIONS)
        servicer = Servicer(CalicoProvider(), args, engine)
        provider_pb2_grpc.add_ResourceProviderServicer_to_server(servicer, server)
        port = server.add_insecure_port(address="127.0.0.1:0")
        await server.start()
        threading.Thread(target=_watch, args=(servicer, os.getppid()), name="engine-watchdog", daemon=True).start()
        sys.stdout.buffer.write(f"{port}\n".encode())
        sys.stdout.buffer.flush()
        await server.wait_for_termination()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
