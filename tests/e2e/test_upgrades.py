"""Every adjacent upgrade of the table, the jump from the old table to the new one and downgrades, in both network types:
nothing replaced, nothing recreated."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from calico_component import Calico, CalicoArgs
from calico_component.local.controlplane import ControlPlane
from tests.conftest import upstream_objects
from tests.e2e.cluster import Key, crd_names, delete_crds, key_of, live_uids, workload_images
from tests.e2e.conftest import Run, StackFactory, mirror

#: Every row of Oracle's table in order (the original page's, then today's), then back one release: 3.32.0 drops the
#: AdminNetworkPolicy CRDs and adds ClusterNetworkPolicy's, 3.31.5 moves the images to quay.io.
TABLE = ["3.25.1", "3.26.1", "3.26.4", "3.27.2", "3.28.0", "3.28.2", "3.29.2", "3.30.0", "3.30.3", "3.31.5", "3.32.0"]
#: What users of the old table do when OKE moves them: a downgrade within the old table, then 3.29.2 (Kubernetes 1.32)
#: straight to 3.30.3 (Kubernetes 1.34).
JUMP = ["3.30.0", "3.28.0", "3.29.2", "3.30.3"]
CHAINS = {"table": [*itertools.pairwise(TABLE), ("3.32.0", "3.31.5")], "jump": list(itertools.pairwise(JUMP))}
FILES = {"vcn-native": "calico-policy-only.yaml", "flannel-overlay": "calico.yaml"}
REPLACING = ("replace", "create-replacement", "delete-replaced")


def program(kubeconfig: str, network_type: str, version: str) -> Any:
    def run() -> None:
        # flannel-overlay with the OKE add-on step off: this cluster is not OKE (kube-flannel-ds removal still runs).
        Calico("calico", CalicoArgs(calico_version=version, network_type=network_type, node_os="oracle-linux-8",
                                    kubeconfig=kubeconfig, manifest_mirror=mirror(), skip_await=True,
                                    disable_flannel_addon=False))
    return run


def upstream(version: str, network_type: str) -> dict[Key, dict[str, Any]]:
    """The objects of upstream's file, parsed independently of the code under test."""
    return {key_of(o): o for o in upstream_objects(version, FILES[network_type])}


def expected_images(version: str, network_type: str) -> dict[str, list[str]]:
    """calico-node's and each Deployment's container images, as upstream's file for that version has them."""
    return {
        o["metadata"]["name"]: [c["image"] for c in o["spec"]["template"]["spec"]["containers"]]
        for o in upstream_objects(version, FILES[network_type])
        if o["kind"] == "Deployment" or (o["kind"] == "DaemonSet" and o["metadata"]["name"] == "calico-node")
    }


@pytest.mark.parametrize("chain", list(CHAINS))
@pytest.mark.parametrize("network_type", list(FILES))
def test_upgrade_matrix(network_type: str, chain: str, control_plane: ControlPlane, k8s: Any,
                        make_stack: StackFactory) -> None:
    """table: 3.25.1 -> ... -> 3.30.0 -> 3.30.3 -> 3.31.5 -> 3.32.0 -> 3.31.5; jump: 3.30.0 -> 3.28.0 -> 3.29.2 ->
    3.30.3. Each step updates in place, keeps UIDs, deletes no CRD, leaves a no-op preview and runs upstream's images."""
    delete_crds(k8s)  # a fresh cluster for each chain
    steps = CHAINS[chain]
    project = f"calico-e2e-matrix-{network_type}-{chain}"
    stack = make_stack(project, program(control_plane.kubeconfig, network_type, steps[0][0]))
    assert stack.up(on_output=lambda _: None).summary.result == "succeeded"

    for old, new in steps:
        step = f"{network_type} {old} -> {new}"
        before, after = upstream(old, network_type), upstream(new, network_type)
        uids = live_uids(k8s, list(before.values()))
        crds = crd_names(k8s)

        stack = make_stack(project, program(control_plane.kubeconfig, network_type, new))
        run = Run()
        assert stack.up(on_event=run.on_event, on_output=lambda _: None).summary.result == "succeeded", step
        ops = run.changed()
        assert not [x for x in ops if x[0] in REPLACING], f"{step}: replacements {ops}"

        kept, added, dropped = before.keys() & after.keys(), after.keys() - before.keys(), before.keys() - after.keys()
        now = live_uids(k8s, list(before.values()) + [after[k] for k in added])
        assert [k for k in kept if now[k] != uids[k]] == [], f"{step}: objects recreated"
        assert all(now[k] for k in added), f"{step}: new objects missing"
        assert crds <= crd_names(k8s), f"{step}: CRDs deleted: {crds - crd_names(k8s)}"
        gone = [k for k in dropped if k[0] != "CustomResourceDefinition"]
        assert [k for k in gone if now[k] is not None] == [], f"{step}: dropped objects still present"
        assert len(run.of("create")) == len(added) and len(run.of("delete")) == len(dropped), (step, ops)

        run = Run()
        stack.preview(on_event=run.on_event)
        assert run.changed() == [], f"{step}: the next preview is not a no-op: {run.changed()}"
        images = workload_images(k8s)
        assert images == expected_images(new, network_type), step
        assert all(i.endswith(f":v{new}") for tags in images.values() for i in tags), (step, images)
