"""The component's own steps as typed resources of calico-oke's provider: their tokens, inputs and outputs.

One table, read by the package schema (``package``), by the resource classes programs register (``steps``) and by
the provider that serves them (``provider``), so a field's name, type and secrecy are said once. Pure: no Pulumi.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Literal

from ..errors import InputError

PACKAGE = "calico-oke"
Kind = Literal["string", "boolean", "integer", "number", "array"]


def package_version() -> str:
    """The installed calico-oke distribution's version: the package's and its provider's."""
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return "0.0.0"


@dataclass(frozen=True)
class Field:
    """One property: its snake_case name (its camelCase key on the wire), type, and what a program may omit."""

    name: str
    kind: Kind
    description: str
    required: bool = False
    secret: bool = False
    items: Kind | None = None

    @property
    def key(self) -> str:
        first, *rest = self.name.split("_")
        return first + "".join(part.capitalize() for part in rest)


@dataclass(frozen=True)
class StepType:
    """A custom resource calico-oke's provider serves: its inputs (also kept as outputs) and its own outputs."""

    token: str
    description: str
    inputs: tuple[Field, ...]
    outputs: tuple[Field, ...]

    @property
    def fields(self) -> tuple[Field, ...]:
        return self.inputs + self.outputs

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(f.key for f in self.fields if f.secret)

    def field(self, key: str) -> Field:
        return next(f for f in self.fields if f.key == key)


_KUBECONFIG = Field("kubeconfig", "string", "Kubeconfig contents of the cluster the step acts on (kept only as a "
                    "secret).", required=True, secret=True)
_CLUSTER = Field("cluster", "string", "The cluster's identity, as the provider read it from the kubeconfig: its OKE "
                 "cluster OCID (the token command's --cluster-id), else the API server URL with its CA's SHA-256. "
                 "A new token changes nothing; another cluster re-runs the step there.")

OKE_ADDON_DISABLED = StepType(
    token=f"{PACKAGE}:index:OkeAddonDisabled",
    description="An OKE cluster add-on (Flannel) disabled with its resources removed, through the OCI API; refresh "
                "notices it re-enabled; destroy leaves it disabled (re-enabling flannel under Calico breaks the pod "
                "network).",
    inputs=(
        Field("cluster_id", "string", "OKE cluster OCID.", required=True),
        Field("addon_name", "string", "The add-on's name (OKE's Flannel add-on is `Flannel`).", required=True),
        Field("remove_resources", "boolean", "Remove the add-on's Kubernetes resources with it."),
        Field("region", "string", "OCI region. Default: the OCI config's."),
        Field("profile", "string", "OCI config file profile. Default: DEFAULT."),
        Field("config_file", "string", "OCI config file. Default: ~/.oci/config."),
        Field("auth", "string", "`api_key`, `instance_principal` or `resource_principal`."),
        Field("endpoint", "string", "Container Engine API endpoint. Default: the region's."),
        Field("timeout_seconds", "number", "How long the disable and its work request may take."),
        Field("poll_seconds", "number", "How often the work request is read."),
        Field("retry_base_seconds", "number", "First pause before a throttled or failed OCI call is tried again."),
        Field("existing_node_count", "integer", "Managed worker nodes the cluster has (from its node pools)."),
        Field("allow_existing_nodes", "boolean", "Disable the add-on even though the cluster has worker nodes."),
    ),
    outputs=(
        Field("addon_state", "string", "The add-on's state as OKE last reported it (`DELETED`, or `ABSENT`)."),
        Field("work_request_id", "string", "The OKE work request of the disable, if one ran."),
    ),
)

DAEMONSET_ABSENT = StepType(
    token=f"{PACKAGE}:index:DaemonSetAbsent",
    description="A DaemonSet (kube-system/kube-flannel-ds) deleted and kept absent on the cluster of `kubeconfig`; "
                "refresh notices it back; destroy never re-creates it.",
    inputs=(
        _KUBECONFIG,
        Field("namespace", "string", "The DaemonSet's namespace.", required=True),
        Field("name", "string", "The DaemonSet's name.", required=True),
        Field("timeout_seconds", "number", "How long its deletion may take."),
        Field("check_nodes", "boolean", "On the first create, refuse when the cluster has nodes running it."),
        Field("allow_existing_nodes", "boolean", "Delete it even though nodes run it."),
    ),
    outputs=(
        _CLUSTER,
        Field("present", "boolean", "Whether the DaemonSet exists (false after create; refresh reads it)."),
        Field("existed", "boolean", "Whether the create found the DaemonSet and deleted it."),
    ),
)

ROLLOUT_AWAITED = StepType(
    token=f"{PACKAGE}:index:RolloutAwaited",
    description="A DaemonSet's rollout of its current template (`trigger`: its digest) awaited by progress: done when "
                "every pod runs it and is ready; fails when no more pods became ready for `deadlineSeconds`.",
    inputs=(
        _KUBECONFIG,
        Field("namespace", "string", "The DaemonSet's namespace.", required=True),
        Field("name", "string", "The DaemonSet's name.", required=True),
        Field("trigger", "string", "Digest of the pod template to wait for: a new one waits again.", required=True),
        Field("deadline_seconds", "number", "How long the rollout may go without one more pod updated and ready.",
              required=True),
    ),
    outputs=(
        _CLUSTER,
        Field("pods", "integer", "How many pods the finished rollout had."),
        Field("rolled_out", "boolean", "Whether every pod runs the current template (refresh reads it; false makes "
                                       "the next up wait again)."),
    ),
)

POLICY_CHECKED = StepType(
    token=f"{PACKAGE}:index:PolicyCheck",
    description="NetworkPolicy proved enforced on a sample of the cluster's nodes (probe pods and policies in a "
                "temporary namespace), once per calico-node template (`trigger`).",
    inputs=(
        _KUBECONFIG,
        Field("trigger", "string", "Digest of calico-node's pod template: a new one runs the check again.",
              required=True),
        Field("nodes", "integer", "How many nodes to sample.", required=True),
        Field("image_registry", "string", "Registry the probe image is pulled from instead of registry.k8s.io."),
        Field("pod_timeout_seconds", "number", "How long each probe pod may take to start.", required=True),
    ),
    outputs=(
        _CLUSTER,
        Field("summary", "string", "The check's summary line."),
        Field("node_lines", "array", "One line per node checked.", items="string"),
    ),
)

STEP_TYPES: tuple[StepType, ...] = (OKE_ADDON_DISABLED, DAEMONSET_ABSENT, ROLLOUT_AWAITED, POLICY_CHECKED)
BY_TOKEN: dict[str, StepType] = {s.token: s for s in STEP_TYPES}
#: What a stack deployed by calico-oke 0.1.0 recorded these steps as (Python dynamic resources); the resources alias
#: it, so the first ``up`` of this release moves them to the provider in place.
LEGACY_DYNAMIC_TYPE = "pulumi-python:dynamic:Resource"


class Unknown:
    """A value not known yet (preview of a program whose input comes from a resource not created yet)."""

    _instance: Unknown | None = None

    def __new__(cls) -> Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<unknown>"


UNKNOWN = Unknown()


def _typed(field: Field, value: Any) -> Any:
    """``value`` as ``field``'s type. Numbers cross the wire as floats: an integer field takes a whole float as an
    int and refuses a fraction; a bool is never a number."""
    if value is None or value is UNKNOWN:
        return value
    kind = field.kind
    if kind == "string" and isinstance(value, str):
        return value
    if kind == "boolean" and isinstance(value, bool):
        return value
    if kind in ("integer", "number") and isinstance(value, int | float) and not isinstance(value, bool):
        if kind == "number":
            return float(value)
        if float(value).is_integer():
            return int(value)
        raise InputError(field.key, f"must be a whole number, got {value:g}")
    if kind == "array" and isinstance(value, list | tuple):
        item = Field(field.name, field.items or "string", field.description)
        return [_typed(item, v) for v in value]
    raise InputError(field.key, f"must be a {kind}, got {type(value).__name__} {value!r}"
                         if not field.secret else f"must be a {kind}, got {type(value).__name__}")


def typed(step: StepType, props: Mapping[str, Any], *, keep_unknown_keys: bool = False) -> dict[str, Any]:
    """``props`` (camelCase keys, as they crossed the wire) with every known field of ``step`` typed; keys the step
    does not define are dropped unless ``keep_unknown_keys`` (a state recorded by an older release keeps its own)."""
    known = {f.key: f for f in step.fields}
    out: dict[str, Any] = {}
    for key, value in props.items():
        if key in known:
            out[key] = _typed(known[key], value)
        elif keep_unknown_keys:
            out[key] = value
    return out


def missing(step: StepType, props: Mapping[str, Any]) -> list[str]:
    """The required inputs of ``step`` that ``props`` lacks."""
    return [f.key for f in step.inputs if f.required and props.get(f.key) is None]


def snake(key: str) -> str:
    """``deadlineSeconds`` -> ``deadline_seconds``."""
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in key)
