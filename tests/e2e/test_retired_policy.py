"""No silent loss of policy on 3.32: AdminNetworkPolicy objects stop an upgrade at preview, through the CLI."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import pytest
import yaml
from kubernetes import client

from calico_component.local.controlplane import ControlPlane
from tests.conftest import REPO
from tests.e2e.cluster import assert_installed, crd_names, fingerprints, key_of, live_uids
from tests.e2e.conftest import mirror
from tests.e2e.enforcement import init_program
from tests.e2e.engine import cli_errors
from tests.e2e.proxy import SilenceableProxy, proxied

pytestmark = pytest.mark.usefixtures("three_nodes")
GROUP, VERSION = "policy.networking.k8s.io", "v1alpha1"
CONFIG = {"calicoVersion": "3.31.5", "networkType": "vcn-native", "nodeOs": "oracle-linux-8"}


def rendered(version: str) -> list[dict[str, Any]]:
    text = subprocess.run([sys.executable, "-m", "calico_component", "render", "--calico-version", version,
                           "--network-type", "vcn-native", "--node-os", "oracle-linux-8", "--mirror", mirror()],
                          capture_output=True, text=True, check=True, cwd=REPO, timeout=120).stdout
    return [o for o in yaml.safe_load_all(text) if o]


def admin_policy(name: str, priority: int) -> dict[str, Any]:
    """An AdminNetworkPolicy (v1alpha1, as the CRD Calico 3.31 ships validates it): deny ingress from everywhere."""
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "AdminNetworkPolicy", "metadata": {"name": name},
            "spec": {"priority": priority, "subject": {"namespaces": {}},
                     "ingress": [{"name": "deny-all", "action": "Deny", "from": [{"namespaces": {}}]}]}}


BASELINE = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "BaselineAdminNetworkPolicy", "metadata": {"name": "default"},
            "spec": {"subject": {"namespaces": {}},
                     "ingress": [{"name": "deny-all", "action": "Deny", "from": [{"namespaces": {}}]}]}}


def test_admin_network_policies_stop_the_upgrade_to_332_until_removed(node_cluster: ControlPlane, node_k8s: Any,
                                                                       stack_cli: Any) -> None:
    """3.31.5 installed, two AdminNetworkPolicies and the BaselineAdminNetworkPolicy created: with calicoVersion 3.32.0,
    preview and up fail with one error naming them and the way out, and nothing is written. With the API server
    accepting connections and never answering, the check fails closed: preview warns, `up` fails naming the endpoint
    and changes nothing. Once they are deleted, the same up upgrades in place and the AdminNetworkPolicy CRDs stay on
    the cluster; one created after the upgrade is reported as unenforced, not refused."""
    with proxied(node_cluster.kubeconfig) as (proxy, kubeconfig):
        _upgrade_refused_then_done(node_k8s, stack_cli("anp"), proxy, kubeconfig)


def _upgrade_refused_then_done(node_k8s: Any, cli: Any, proxy: SilenceableProxy, kubeconfig: str) -> None:
    init_program(cli, "anp", {**CONFIG, "manifestMirror": mirror()}, kubeconfig)
    cli("up", "--yes", "--skip-preview")
    assert_installed(node_k8s, "3.31.5")
    api = client.CustomObjectsApi(node_k8s)
    api.create_cluster_custom_object(GROUP, VERSION, "adminnetworkpolicies", admin_policy("deny-from-all", 10))
    api.create_cluster_custom_object(GROUP, VERSION, "adminnetworkpolicies", admin_policy("deny-from-all-2", 20))
    api.create_cluster_custom_object(GROUP, VERSION, "baselineadminnetworkpolicies", BASELINE)
    installed, target = rendered("3.31.5"), rendered("3.32.0")
    # Everything either release deploys: what 3.32.0 alone brings (the ClusterNetworkPolicy CRD) must stay absent.
    objects = installed + [o for o in target if key_of(o) not in {key_of(i) for i in installed}]
    before, uids = fingerprints(node_k8s, objects), live_uids(node_k8s, installed)
    assert before[("CustomResourceDefinition", "", f"clusternetworkpolicies.{GROUP}")] is None

    cli("config", "set", "calicoVersion", "3.32.0")
    for command in (("preview",), ("up", "--yes")):
        proc = cli(*command, check=False)
        output = proc.stdout + proc.stderr
        errors = cli_errors(output)
        assert proc.returncode != 0 and len(errors) == 1, output[-3000:]
        assert ("Calico 3.32.0 no longer enforces AdminNetworkPolicy or BaselineAdminNetworkPolicy objects, and this "
                "cluster holds 3 of them: AdminNetworkPolicy deny-from-all, AdminNetworkPolicy deny-from-all-2, "
                "BaselineAdminNetworkPolicy default.") in errors[0], errors[0]
        assert "ClusterNetworkPolicy" in errors[0] and "Nothing was changed." in errors[0]
        assert "Traceback" not in output
    assert fingerprints(node_k8s, objects) == before, "the refused upgrade wrote to the cluster"
    assert_installed(node_k8s, "3.31.5")

    # The same cluster, now unreadable: the checks must not pass by default. (The stack program refreshes first,
    # which against an unreadable cluster fails in the Kubernetes provider anyway: without it, calico-oke's checks
    # are what stands between the upgrade and the cluster.)
    proxy.silent = True
    preview = cli("preview", "--refresh=false", check=False)
    said = preview.stdout + preview.stderr
    assert re.search(r"warning: .*could not read the cluster", said), said[-3000:]
    proc = cli("up", "--yes", "--skip-preview", "--refresh=false", check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0 and f"127.0.0.1:{proxy.port} did not answer" in output, output[-3000:]
    assert "Nothing was changed" in output and "skip_cluster_checks" in output and "Traceback" not in output
    proxy.silent = False  # (no fingerprint check here: through a silent proxy no write could land anyway)
    assert_installed(node_k8s, "3.31.5")

    api.delete_cluster_custom_object(GROUP, VERSION, "adminnetworkpolicies", "deny-from-all")
    api.delete_cluster_custom_object(GROUP, VERSION, "adminnetworkpolicies", "deny-from-all-2")
    api.delete_cluster_custom_object(GROUP, VERSION, "baselineadminnetworkpolicies", "default")
    cli("up", "--yes")
    assert_installed(node_k8s, "3.32.0")
    # Every object 3.31.5 had, CRDs included (the two retired ones are retained, not recreated), keeps its UID.
    assert live_uids(node_k8s, installed) == uids, "the upgrade recreated objects"
    assert {f"adminnetworkpolicies.{GROUP}", f"baselineadminnetworkpolicies.{GROUP}",
            f"clusternetworkpolicies.{GROUP}"} <= crd_names(node_k8s)
    cli("preview", "--expect-no-changes")

    # calico-node already runs 3.32.0: an AdminNetworkPolicy created now is unenforced whatever this stack does, so
    # the check states it and lets the stack be managed.
    api.create_cluster_custom_object(GROUP, VERSION, "adminnetworkpolicies", admin_policy("late", 30))
    proc = cli("preview", "--expect-no-changes", check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert "does not enforce AdminNetworkPolicy objects" in output and "AdminNetworkPolicy late" in output, output
