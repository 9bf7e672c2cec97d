"""A stack deployed by calico-oke 0.1.0 (its steps Python dynamic resources in state), upgraded to this release with a
plain `pulumi up`: nothing on the cluster deleted, replaced or re-created, and nothing left to change afterwards."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from calico_component.local.controlplane import ControlPlane
from calico_component.local.nodes import flannel_present, run_fake_flannel
from calico_component.local.program import PROGRAM_FILES, repo_root
from calico_component.local.workspace import PulumiCli, engine_env
from calico_component.steps.types import BY_TOKEN, LEGACY_DYNAMIC_TYPE
from tests.e2e.cluster import assert_installed, live_uids
from tests.e2e.conftest import mirror
from tests.e2e.engine import PREVIEW_REPLACEMENT
from tests.e2e.release import RELEASE_0_1_0, install_release

pytestmark = pytest.mark.usefixtures("three_nodes")

def _use(project: Path, source: Path, venv: Path) -> None:
    """The stack program of ``source``, running in ``venv`` (what a user's project has after `pip install`)."""
    for name in PROGRAM_FILES:
        shutil.copyfile(source / name, project / name)
    link = project / ".venv"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(venv, target_is_directory=True)


def _objects(cli: PulumiCli) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The Kubernetes objects in the stack's state, and every resource."""
    resources = json.loads(cli("stack", "export").stdout)["deployment"]["resources"]
    objects = [{"apiVersion": r["outputs"]["apiVersion"], "kind": r["outputs"]["kind"],
                "metadata": {k: v for k, v in r["outputs"]["metadata"].items() if k in ("name", "namespace")}}
               for r in resources if r["type"].startswith("kubernetes:") and "outputs" in r]
    return objects, resources


def _step_outputs(resources: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The recorded outputs of the flannel and rollout steps, by resource name, whichever release wrote them."""
    return {r["urn"].rsplit("::", 1)[1]: r.get("outputs", {}) for r in resources
            if r["urn"].rsplit("::", 1)[1] in ("calico-flannel-daemonset", "calico-calico-node-rollout")}


def test_a_stack_of_0_1_0_moves_to_this_release_without_touching_the_cluster(
        tool_paths: dict[str, Path], node_cluster: ControlPlane, node_k8s: Any, tmp_path: Path) -> None:
    """0.1.0 installs Calico 3.32.0 on a flannel-overlay cluster (kube-flannel-ds removed, calico-node awaited: two
    dynamic resources in state). This release's first preview updates only those two steps (moved to calico-oke's
    provider) and the two Kubernetes providers (keyed to the cluster from now on), nothing replaced, created or
    deleted; its `up` (which refreshes first, loading the recorded providers) keeps every object's UID, leaves flannel
    absent, and writes a state without dynamic resources; then nothing changes."""
    run_fake_flannel(node_k8s, 3, timeout=30)
    source, venv = install_release(RELEASE_0_1_0, tmp_path, repo_root())
    project = tmp_path / "project"
    project.mkdir()
    _use(project, source, venv)
    cli = PulumiCli(tool_paths["pulumi"], project, engine_env(tmp_path / "pulumi", tool_paths), timeout=600)
    cli("stack", "init", "dev")
    for key, value in {"calicoVersion": "3.32.0", "networkType": "flannel-overlay", "nodeOs": "oracle-linux-8",
                       "disableFlannelAddon": "false", "allowExistingNodes": "true", "podCidr": "10.244.0.0/16",
                       "manifestMirror": mirror()}.items():
        cli("config", "set", key, value)
    cli("config", "set", "--secret", "kubeconfig", stdin=node_cluster.kubeconfig)
    cli("up", "--yes")
    assert_installed(node_k8s, "3.32.0")
    assert not flannel_present(node_k8s)
    objects, resources = _objects(cli)
    legacy = sorted(r["urn"].rsplit("::", 1)[1] for r in resources if r["type"] == LEGACY_DYNAMIC_TYPE)
    assert legacy == ["calico-calico-node-rollout", "calico-flannel-daemonset"], "0.1.0 did not write what it did"
    uids = live_uids(node_k8s, objects)
    recorded = _step_outputs(resources)
    assert recorded["calico-flannel-daemonset"]["existed"] is True and recorded["calico-calico-node-rollout"]["pods"] == 3

    _use(project, repo_root(), Path(sys.prefix))
    preview = cli("preview", "--diff").stdout
    assert not PREVIEW_REPLACEMENT.search(preview), preview[-4000:]
    assert "4 to update" in preview and "to create" not in preview and "to delete" not in preview, preview[-4000:]
    assert preview.count("- __provider: [secret]") == 2 and preview.count("+ clusterIdentifier: ") == 2, preview
    cli("up", "--yes")
    assert live_uids(node_k8s, objects) == uids, "an object was recreated"
    assert not flannel_present(node_k8s)
    assert_installed(node_k8s, "3.32.0")
    _, resources = _objects(cli)
    assert not [r for r in resources if r["type"] == LEGACY_DYNAMIC_TYPE or "__provider" in r.get("outputs", {})]
    assert sorted(r["type"] for r in resources if r["type"] in BY_TOKEN) == [
        "calico-oke:index:DaemonSetAbsent", "calico-oke:index:RolloutAwaited"]
    moved = _step_outputs(resources)
    # moved, not run again: a second deletion would record existed=False (flannel is gone by now)
    assert moved["calico-flannel-daemonset"]["existed"] is True, moved
    assert moved["calico-calico-node-rollout"]["pods"] == recorded["calico-calico-node-rollout"]["pods"], moved
    cli("preview", "--expect-no-changes")
    cli("destroy", "--yes")
