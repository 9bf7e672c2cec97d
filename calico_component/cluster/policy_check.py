"""The component's policy check as a Pulumi resource: runs ``verify``'s check after calico-node was awaited, on an
install and whenever calico-node's template (or the check's settings) change, never on a no-op ``up``."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi.dynamic as dyn

from ..errors import PolicyNotEnforcedError
from ..manifest.transforms import find_calico_node

#: The inputs whose change re-runs the check; the kubeconfig is not one (a rotated credential changes no policy).
RERUN_KEYS = ("trigger", "nodes", "image_registry", "pod_timeout_seconds")


def template_digest(objects: Sequence[Mapping[str, Any]], version: str) -> str:
    """SHA-256 of calico-node's pod template as rendered: it changes exactly when an ``up`` rolls calico-node."""
    template = objects[find_calico_node(objects, version)].get("spec", {}).get("template", {})
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()


def rerun_needed(olds: Mapping[str, Any], news: Mapping[str, Any]) -> list[str]:
    """The inputs that changed since the check last passed: any of them makes ``up`` run it again."""
    return [key for key in RERUN_KEYS if olds.get(key) != news.get(key)]


def run(props: Mapping[str, Any]) -> dict[str, Any]:
    """Run the check with the resource's inputs; print one line per node and the summary (``up`` shows a dynamic
    provider's output); raise with the whole report when policy is not enforced on a node checked."""
    from ..policy import report as verify_report
    from ..policy import run as verify_run

    settings = verify_run.new_settings(int(props["nodes"]), props.get("image_registry"),
                                       float(props["pod_timeout_seconds"]))
    results = verify_run.check_policy(str(props["kubeconfig"]), settings)
    found = verify_report.report(results)
    if found.failure is not None:
        raise PolicyNotEnforcedError(f"{found.failure}\nOnce fixed, the next `pulumi up` runs this check again (after a "
                                     "failed `pulumi up --replace` of it, replace it again); `python -m "
                                     "calico_component verify --kubeconfig FILE` runs it on its own.")
    print("\n".join([*found.lines, found.summary]), flush=True)
    return {**props, "summary": found.summary, "node_lines": list(found.lines)}


class PolicyCheckProvider(dyn.ResourceProvider):
    """Create and update run the check; delete has nothing to remove (the check leaves nothing behind)."""

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dyn.DiffResult:
        return dyn.DiffResult(changes=bool(rerun_needed(olds, news)), replaces=[], delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> dyn.CreateResult:
        return dyn.CreateResult("policy-check", run(props))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> dyn.UpdateResult:
        return dyn.UpdateResult(run(news))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        return None


class PolicyCheck(dyn.Resource):
    """NetworkPolicy proved enforced on a sample of the cluster's nodes (see ``verify_plan``), once per calico-node
    template."""

    summary: pulumi.Output[str]
    node_lines: pulumi.Output[list[str]]

    def __init__(self, name: str, *, kubeconfig: pulumi.Input[str], trigger: str, nodes: int,
                 image_registry: str | None, pod_timeout_seconds: float,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        props = {
            "kubeconfig": pulumi.Output.secret(kubeconfig),
            "trigger": trigger,
            "nodes": nodes,
            "image_registry": image_registry,
            "pod_timeout_seconds": pod_timeout_seconds,
            "summary": None,
            "node_lines": None,
        }
        super().__init__(PolicyCheckProvider(), name, props, pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(additional_secret_outputs=["kubeconfig"])))
