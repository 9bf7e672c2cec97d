"""The component's own steps as programs register them: custom resources of calico-oke's provider (``steps.types``
says their inputs and outputs; the provider, ``provider.server``, does the work in any language)."""

from __future__ import annotations

from typing import Any

import pulumi

from ..steps.types import (
    DAEMONSET_ABSENT,
    LEGACY_DYNAMIC_TYPE,
    OKE_ADDON_DISABLED,
    POLICY_CHECKED,
    ROLLOUT_AWAITED,
    StepType,
    package_version,
    snake,
)


class _Step(pulumi.CustomResource):
    """One step: its inputs by camelCase key, its outputs as snake_case attributes, secrets kept secret, and an alias
    to the Python dynamic resource calico-oke 0.1.0 recorded under the same name (moved over in place)."""

    def __init__(self, step: StepType, name: str, inputs: dict[str, Any], opts: pulumi.ResourceOptions | None) -> None:
        unknown = set(inputs) - {f.key for f in step.inputs}
        assert not unknown, f"{step.token} has no input {sorted(unknown)}"
        props = {**inputs, **{f.key: None for f in step.outputs}}
        secrets = list(step.secrets)
        for key in secrets:
            if props.get(key) is not None:
                props[key] = pulumi.Output.secret(props[key])
        super().__init__(step.token, name, props, pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
            version=package_version(), additional_secret_outputs=secrets,
            aliases=[pulumi.Alias(type_=LEGACY_DYNAMIC_TYPE)])))

    def translate_output_property(self, prop: str) -> str:
        return snake(prop)


class OkeAddonDisabled(_Step):
    """The OKE cluster add-on ``addon_name`` (Flannel) is disabled with its resources removed."""

    addon_state: pulumi.Output[str]
    work_request_id: pulumi.Output[str | None]

    def __init__(self, name: str, *, cluster_id: pulumi.Input[str], addon_name: str, remove_resources: bool = True,
                 region: str | None = None, profile: str | None = None, config_file: str | None = None,
                 auth: str = "api_key", endpoint: str | None = None, timeout_seconds: float = 900,
                 poll_seconds: float = 5, retry_base_seconds: float = 1,
                 existing_node_count: pulumi.Input[int] | None = None, allow_existing_nodes: bool = False,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(OKE_ADDON_DISABLED, name, {
            "clusterId": cluster_id, "addonName": addon_name, "removeResources": remove_resources, "region": region,
            "profile": profile, "configFile": config_file, "auth": auth, "endpoint": endpoint,
            "timeoutSeconds": timeout_seconds, "pollSeconds": poll_seconds, "retryBaseSeconds": retry_base_seconds,
            "existingNodeCount": existing_node_count, "allowExistingNodes": allow_existing_nodes}, opts)


class DaemonSetAbsent(_Step):
    """The DaemonSet ``namespace/daemonset_name`` (kube-system/kube-flannel-ds) does not exist on the cluster."""

    present: pulumi.Output[bool]
    existed: pulumi.Output[bool]
    cluster: pulumi.Output[str]

    def __init__(self, name: str, *, kubeconfig: pulumi.Input[str], namespace: str, daemonset_name: str,
                 timeout_seconds: float = 300, check_nodes: bool = True, allow_existing_nodes: bool = False,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(DAEMONSET_ABSENT, name, {
            "kubeconfig": kubeconfig, "namespace": namespace, "name": daemonset_name,
            "timeoutSeconds": timeout_seconds, "checkNodes": check_nodes,
            "allowExistingNodes": allow_existing_nodes}, opts)


class RolloutAwaited(_Step):
    """The DaemonSet ``namespace/daemonset`` runs its current template (``trigger``: its digest) ready on every node."""

    pods: pulumi.Output[int]
    cluster: pulumi.Output[str]

    def __init__(self, name: str, *, kubeconfig: pulumi.Input[str], namespace: str, daemonset: str, trigger: str,
                 deadline_seconds: float, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(ROLLOUT_AWAITED, name, {
            "kubeconfig": kubeconfig, "namespace": namespace, "name": daemonset, "trigger": trigger,
            "deadlineSeconds": deadline_seconds}, opts)


class PolicyCheck(_Step):
    """NetworkPolicy proved enforced on a sample of the cluster's nodes, once per calico-node template."""

    summary: pulumi.Output[str]
    node_lines: pulumi.Output[list[str]]

    def __init__(self, name: str, *, kubeconfig: pulumi.Input[str], trigger: str, nodes: int,
                 image_registry: str | None, pod_timeout_seconds: float,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(POLICY_CHECKED, name, {
            "kubeconfig": kubeconfig, "trigger": trigger, "nodes": nodes, "imageRegistry": image_registry,
            "podTimeoutSeconds": pod_timeout_seconds}, opts)
