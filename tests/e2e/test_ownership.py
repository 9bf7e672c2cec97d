"""One cluster's Calico, one stack: a second stack is refused at preview with one plain message, through the CLI; a
Calico installed by hand is still adopted with adoptExisting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from calico_component.local.controlplane import ControlPlane
from tests.conftest import REPO
from tests.e2e.cluster import assert_installed, crd_names, fingerprints, live_uids
from tests.e2e.conftest import mirror
from tests.e2e.enforcement import init_program
from tests.e2e.engine import cli_errors

pytestmark = pytest.mark.usefixtures("three_nodes")
CONFIG = {"calicoVersion": "3.32.0", "networkType": "vcn-native", "nodeOs": "oracle-linux-8"}


def rendered(version: str = "3.32.0") -> tuple[str, list[dict[str, Any]]]:
    text = subprocess.run([sys.executable, "-m", "calico_component", "render", "--calico-version", version,
                           "--network-type", "vcn-native", "--node-os", "oracle-linux-8", "--mirror", mirror()],
                          capture_output=True, text=True, check=True, cwd=REPO, timeout=120).stdout
    return text, [o for o in yaml.safe_load_all(text) if o]


def test_a_second_stack_is_refused_at_preview_and_changes_nothing(node_cluster: ControlPlane, node_k8s: Any,
                                                                  stack_cli: Any) -> None:
    """Stack 'second' on a cluster whose Calico stack 'first' manages: preview and up fail with one error naming
    calico-node, the count and the owner; no object (CRDs included) is written; destroying 'second' deletes nothing;
    'first' still previews no changes."""
    _, objects = rendered()
    others = len([o for o in objects if o["kind"] != "CustomResourceDefinition"]) - 1  # CRDs are never looked at
    first = stack_cli("first")
    init_program(first, "first", {**CONFIG, "manifestMirror": mirror()}, node_cluster.kubeconfig)
    first("up", "--yes", "--skip-preview")
    before, uids = fingerprints(node_k8s, objects), live_uids(node_k8s, objects)

    second = stack_cli("second")
    init_program(second, "second", {**CONFIG, "manifestMirror": mirror()}, node_cluster.kubeconfig)
    for command in (("preview",), ("up", "--yes")):
        proc = second(*command, check=False)
        output = proc.stdout + proc.stderr
        assert proc.returncode != 0
        errors = cli_errors(output)
        assert len(errors) == 1, output[-3000:]
        assert ("error: Calico is already installed on this cluster and this stack (organization/calico-oke/second) "
                f"does not manage it: DaemonSet kube-system/calico-node and {others} other Calico objects exist, managed "
                "by stack organization/calico-oke/first") in errors[0], errors[0]
        assert "Two stacks must never manage one cluster's Calico" in errors[0]
        assert "Traceback" not in output, output[-3000:]
    assert fingerprints(node_k8s, objects) == before, "the refused stack wrote to the cluster"

    second("destroy", "--yes")
    assert live_uids(node_k8s, objects) == uids, "destroying the refused stack deleted something"
    first("preview", "--expect-no-changes")
    assert_installed(node_k8s, "3.32.0")


def test_a_hand_install_is_refused_then_adopted_through_the_cli(node_cluster: ControlPlane, node_k8s: Any,
                                                               stack_cli: Any, tool_paths: dict[str, Path]) -> None:
    """kubectl apply --server-side of the rendered manifest: preview without adoptExisting says to set it and writes
    nothing; with it, up takes every object over with the same UIDs and the next preview has no changes."""
    text, objects = rendered()
    subprocess.run([str(tool_paths["kubectl"]), "--kubeconfig", str(node_cluster.kubeconfig_path), "apply",
                    "--server-side", "-f", "-"], input=text, text=True, check=True, capture_output=True, timeout=120)
    before, uids = fingerprints(node_k8s, objects), live_uids(node_k8s, objects)
    assert crd_names(node_k8s)

    cli = stack_cli("adopt")
    init_program(cli, "adopt", {**CONFIG, "manifestMirror": mirror()}, node_cluster.kubeconfig)
    proc = cli("preview", check=False)
    errors = cli_errors(proc.stdout + proc.stderr)
    assert proc.returncode != 0 and len(errors) == 1, proc.stdout[-3000:]
    assert "no calico-oke stack's mark" in errors[0] and "set adoptExisting" in errors[0]
    assert fingerprints(node_k8s, objects) == before

    cli("config", "set", "adoptExisting", "true")
    cli("up", "--yes")
    assert live_uids(node_k8s, objects) == uids, "adoption recreated objects"
    assert_installed(node_k8s, "3.32.0")
    cli("preview", "--expect-no-changes")
