"""Adopting a Calico installed by hand with kubectl (client-side and server-side apply): nothing is recreated."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import yaml
from pulumi import automation as auto

from calico_component import Calico, CalicoArgs
from calico_component.local.controlplane import ControlPlane
from tests.conftest import REPO, upstream_image
from tests.e2e.cluster import Key, calico_node, delete_crds, env_of, key_of, live_uids
from tests.e2e.conftest import Kubectl, Run, StackFactory, mirror

VERSION, UPGRADE = "3.31.5", "3.32.0"
KUBECTL_STYLES = {"client-side": ["apply", "-f", "-"], "server-side": ["apply", "--server-side", "-f", "-"]}
HAND_ADDED_ENV = "CALICO_HAND_TUNED"


def rendered_yaml(version: str) -> str:
    """What a user following Oracle's page applies: the upstream manifest with the documented edits (our CLI)."""
    proc = subprocess.run(
        [sys.executable, "-m", "calico_component", "render", "--calico-version", version, "--network-type", "vcn-native",
         "--node-os", "oracle-linux-8", "--mirror", mirror()],
        capture_output=True, text=True, check=True, cwd=REPO, timeout=120,
    )
    return proc.stdout


def hand_tuned(manifest: str) -> tuple[str, list[dict[str, Any]]]:
    """The manifest with one env var a user added by hand to calico-node (a field only kubectl will have set)."""
    objects = [o for o in yaml.safe_load_all(manifest) if o]
    for o in objects:
        if o["kind"] == "DaemonSet" and o["metadata"]["name"] == "calico-node":
            o["spec"]["template"]["spec"]["containers"][0]["env"].append({"name": HAND_ADDED_ENV, "value": "1"})
    return yaml.safe_dump_all(objects), objects


def program(kubeconfig: str, version: str, adopt: bool) -> Any:
    def run() -> None:
        Calico("calico", CalicoArgs(calico_version=version, network_type="vcn-native", node_os="oracle-linux-8",
                                    kubeconfig=kubeconfig, manifest_mirror=mirror(), skip_await=True,
                                    adopt_existing=adopt))
    return run


def managers(obj: Any) -> set[str]:
    return {f.manager for f in obj.metadata.managed_fields}


def _crds(k8s: Any) -> dict[str, Any]:
    from kubernetes import client

    found: Any = client.ApiextensionsV1Api(k8s).list_custom_resource_definition()
    return {c.metadata.name: c for c in found.items}


def unchanged(before: dict[Key, str | None], after: dict[Key, str | None]) -> list[Key]:
    return [k for k, uid in before.items() if after.get(k) != uid]


@pytest.mark.parametrize("style", list(KUBECTL_STYLES))
def test_adopt_hand_installed_calico(style: str, control_plane: ControlPlane, k8s: Any, kubectl: Kubectl,
                                     make_stack: StackFactory) -> None:
    """adopt_existing takes over a kubectl-installed Calico: no UID changes, refresh is a no-op, upgrades in place."""
    delete_crds(k8s)  # the module's cluster is shared: start from no Calico at all
    manifest, objects = hand_tuned(rendered_yaml(VERSION))
    kubectl(*KUBECTL_STYLES[style], stdin=manifest)
    before = live_uids(k8s, objects)
    assert all(before.values()), "kubectl did not create every object"

    # Without the input, preview already refuses (the ownership check, before any provider exists) with the
    # adoptExisting hint, and `up` changes nothing: no UID, and no CRD gets a Pulumi field manager.
    crds_before = {name: managers(crd) for name, crd in _crds(k8s).items()}
    stack = make_stack(f"calico-e2e-adopt-{style}", program(control_plane.kubeconfig, VERSION, adopt=False))
    for operation in (stack.preview, stack.up):
        with pytest.raises(auto.errors.CommandError, match=r"set adoptExisting \(adopt_existing=True\)") as info:
            operation(on_output=lambda _: None)
        assert "DaemonSet kube-system/calico-node and" in str(info.value)
    assert unchanged(before, live_uids(k8s, objects)) == []
    assert {name: managers(crd) for name, crd in _crds(k8s).items()} == crds_before, "a CRD was taken over"

    stack = make_stack(f"calico-e2e-adopt-{style}", program(control_plane.kubeconfig, VERSION, adopt=True))
    run = Run()
    result = stack.up(on_event=run.on_event, on_output=lambda _: None)
    assert result.summary.result == "succeeded"
    # Creates only: the refused attempt above registered no provider and no object.
    assert [x for x in run.changed() if x[0] != "create"] == [], run.changed()
    assert unchanged(before, live_uids(k8s, objects)) == [], "adoption recreated objects"

    run = Run()
    stack.preview(on_event=run.on_event, refresh=True)
    assert run.changed() == [], f"preview --refresh after adoption is not a no-op: {run.changed()}"

    # The adopting up keeps what kubectl alone set (README, "Adopting a Calico installed by hand").
    env = env_of(calico_node(k8s))
    assert env[HAND_ADDED_ENV] == "1"
    annotations = calico_node(k8s).metadata.annotations or {}
    assert ("kubectl.kubernetes.io/last-applied-configuration" in annotations) is (style == "client-side")

    # The next upgrade is in place, and the adopted objects keep their identity.
    stack = make_stack(f"calico-e2e-adopt-{style}", program(control_plane.kubeconfig, UPGRADE, adopt=True))
    run = Run()
    assert stack.up(on_event=run.on_event, on_output=lambda _: None).summary.result == "succeeded"
    assert not [x for x in run.changed() if x[0] in ("replace", "create-replacement", "delete-replaced")]
    # Deleted from the stack: only what upstream dropped (3.32.0's AdminNetworkPolicy CRDs, retained on the cluster).
    dropped = {key_of(o) for o in objects} - {key_of(o) for o in yaml.safe_load_all(rendered_yaml(UPGRADE)) if o}
    deleted = [(t, n) for op, t, n in run.changed() if op == "delete"]
    assert len(deleted) == len(dropped) and all(k[0] == "CustomResourceDefinition" for k in dropped), (deleted, dropped)
    assert {k[2] for k in dropped} <= set(_crds(k8s)), "a dropped CRD was deleted from the cluster"
    assert unchanged(before, live_uids(k8s, objects)) == []
    assert calico_node(k8s).spec.template.spec.containers[0].image == upstream_image(UPGRADE)
    # That first update of each adopted object hands kubectl's fields to Pulumi, which does not apply them: what only
    # kubectl had set is removed then (README, "Adopting a Calico installed by hand").
    ds = calico_node(k8s)
    assert HAND_ADDED_ENV not in env_of(ds)
    assert "kubectl.kubernetes.io/last-applied-configuration" not in (ds.metadata.annotations or {})
    assert all(m.startswith("pulumi-kubernetes") for m in managers(ds)), managers(ds)
