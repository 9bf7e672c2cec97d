"""NetworkPolicy really enforced: Calico's own Felix on a node with a real dataplane, configured by what `up` deployed.

One control plane: two kwok nodes (cordoned, so workloads land on the real node) and one dataplane
node (``calico_component.local.dataplane``). The stack program is installed through the `pulumi` CLI,
awaited, vcn-native, Oracle Linux 8 (NFT), with Calico 3.30.3 (Oracle's release for Kubernetes 1.34), then
upgraded in place under probes along Oracle's table to 3.31.5 and 3.32.0 (1.35, 1.36); every later test runs
on 3.32.0. ``examples/network-policy-demo`` is a second program with ``installCalico=false``. The tests run
in file order and share that cluster: the drift test comes last.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from calico_component.local.node_host import NODE_RULE_COMMENT
from calico_component.local.nodes import calico_node_pods, pod_ready
from calico_component.local.policydemo import BACKEND_PORT, ENFORCED, OPEN, enforcement_line, felix_outages
from tests.conftest import upstream_image
from tests.e2e.cluster import calico_node, env_of
from tests.e2e.enforcement import (
    NETWORK_CONFIG,
    Enforcement,
    check_leftovers,
    enforcement_cluster,
    policy_check_urn,
    upgrade_watched,
    verify,
)

VERSION = "3.30.3"
CHAIN_CAUSE = "traffic accepted before Calico's rules (chain insert mode Append)"
#: Oracle's releases for Kubernetes 1.35 and 1.36, in the order an OKE cluster meets them.
UPGRADES = ("3.31.5", "3.32.0")


@pytest.fixture(scope="module")
def enforcement(dataplane_tool_paths: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory) -> Iterator[Enforcement]:
    """The cluster, Calico installed by the stack program (awaited), the demo app deployed without policies."""
    config = {"calicoVersion": VERSION, "verifyPolicy": "true", **NETWORK_CONFIG["vcn-native"]}
    with enforcement_cluster(dataplane_tool_paths, tmp_path_factory.mktemp("enforcement"), config) as cluster:
        yield cluster


def test_awaited_up_returned_only_after_felix_was_ready(enforcement: Enforcement) -> None:
    """The awaited `up` returned after Felix on the real node reported ready, and Felix runs the live pod's env."""
    e = enforcement
    ready = [t for t, what, _ in e.node.events() if what == "felix-ready"]
    assert ready and ready[0] < e.up_returned, f"felix-ready at {ready}, up returned at {e.up_returned}"
    state = e.node.calico_state()
    assert state["release"] == f"v{VERSION}" and state["ready"]
    pod = next(p for p in calico_node_pods(e.k8s) if p.spec.node_name == e.node.name)
    assert pod_ready(pod) and state["uid"] == pod.metadata.uid
    live = {k: v for k, v in env_of(calico_node(e.k8s)).items() if v is not None}
    assert {k: state["felix_env"][k] for k in live} == live, "Felix runs the live DaemonSet's values"
    assert state["felix_env"]["NODENAME"] == e.node.name, "fieldRef spec.nodeName resolved from the pod"
    assert state["felix_env"]["FELIX_FELIXHOSTNAME"] == e.node.name


def test_verify_proves_policy_on_the_dataplane_node_and_cannot_run_on_kwok(enforcement: Enforcement) -> None:
    """`verify` on the freshly installed cluster: on the dataplane node every step passes (exit 0, the node's line
    and the summary); on a kwok node, where no container runs, it says it could not run there and exits 1. Neither
    run leaves a namespace, pod or policy behind."""
    e = enforcement
    passed = verify(e, e.node.name)
    assert passed.returncode == 0, passed.stderr
    assert f"{e.node.name}: policy enforced (default-deny, label allow, egress deny; 12 probes)" in passed.stdout
    assert passed.stdout.rstrip().endswith(f"verify: policy enforced on 1 of 1 nodes checked ({e.node.name}): "
                                           "default-deny, label allow, egress deny")
    assert check_leftovers(e) == []
    nodes: Any = client.CoreV1Api(e.k8s).list_node().items
    kwok = str(next(n.metadata.name for n in nodes if n.metadata.name != e.node.name))
    not_run = verify(e, kwok, pod_timeout=5)
    assert not_run.returncode == 1 and "policy enforced" not in not_run.stdout
    last = not_run.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: could not run the policy check on {kwok}: ") and "within 5s" in last, last
    assert check_leftovers(e) == []


def test_before_any_policy_everything_connects(enforcement: Enforcement) -> None:
    """Without policies both clients reach both of the backend's ports (so a later timeout is the policy's doing)."""
    assert enforcement.scenario.matrix() == OPEN


def test_enforcement_holds_through_in_place_upgrades_to_332(enforcement: Enforcement, tmp_path: Path) -> None:
    """With the demo policies in force and both clients probing every 50 ms, `pulumi up` of calicoVersion 3.31.5, then
    3.32.0 (images moved to quay.io, then the AdminNetworkPolicy CRDs replaced) restarts the node's Calico on each
    release and the denied client never connects; after each, preview has nothing to change."""
    for target in UPGRADES:
        outages = len(felix_outages(enforcement.node.events()))
        change = upgrade_watched(enforcement, target, tmp_path / f"probes-{target}")
        change.assert_denied_client_never_connected()
        print(f"vcn-native upgrade to {target}: {enforcement_line(change.logs)}; Felix not ready for "
              f"{max(felix_outages(enforcement.node.events())[outages:], default=0):.1f}s")
        enforcement.stack("preview", "--expect-no-changes")
    image = calico_node(enforcement.k8s).spec.template.spec.containers[0].image
    assert image == upstream_image(UPGRADES[-1]) and image.startswith("quay.io/"), image


def test_the_components_check_ran_on_install_and_each_upgrade_never_on_a_no_op_up(enforcement: Enforcement) -> None:
    """verifyPolicy is on: the awaited install and each upgrade's `up` printed the dataplane node's line and the summary
    (the kwok nodes are cordoned, so not sampled), and the stack's policyCheck output holds it; an `up` that changes
    nothing, and one that updates calico-node without touching its pods (forceConflicts off and on again: only
    annotations), run no check; the check left nothing behind."""
    e = enforcement
    node_line = f"{e.node.name}: policy enforced (default-deny, label allow, egress deny; 12 probes)"
    passed = (f"verify: policy enforced on 1 of 1 nodes checked ({e.node.name}): default-deny, label allow, "
              "egress deny")
    changes = [out for (args, out), (before, _) in zip(e.stack.transcript[1:], e.stack.transcript, strict=False)
               if args[0] == "up" and before[:3] == ("config", "set", "calicoVersion")]
    install = next(out for args, out in e.stack.transcript if args[0] == "up")
    for out in (install, *changes):
        assert node_line in out and passed in out, out
    assert e.stack("stack", "output", "policyCheck").stdout.strip() == passed
    for command in (("up",), ("config", "set", "forceConflicts", "false"), ("up",),
                    ("config", "set", "forceConflicts", "true"), ("up",)):
        e.stack(*command, *(("--yes", "--skip-preview") if command == ("up",) else ()))
        out = e.stack.transcript[-1][1]
        assert node_line not in out and "calico-policy-check updat" not in out and "calico-policy-check replac" \
            not in out and "calico-policy-check creat" not in out, out
    assert "calico-daemonset-kube-system-calico-node updated" in e.stack.transcript[-3][1], e.stack.transcript[-3][1]
    assert check_leftovers(e) == []


def test_demo_policies_applied_and_removed_by_pulumi(enforcement: Enforcement) -> None:
    """The example's policies through `pulumi up`: the unlabelled client times out, role=frontend reaches 8080 only;
    removed by `pulumi up`, traffic flows again."""
    e, s = enforcement, enforcement.scenario
    assert e.node.calico_state()["release"] == f"v{UPGRADES[-1]}"
    e.policies(False)  # the upgrades left them on: the control first, everything connects without them
    s.until("client", BACKEND_PORT, "ok", 20)
    assert s.matrix() == OPEN
    e.policies(True)
    s.until("client", BACKEND_PORT, "timeout", 20)
    s.until("frontend", BACKEND_PORT, "ok", 20)
    time.sleep(1)
    assert s.matrix() == ENFORCED, "held after a second: denied stays denied, allowed stays allowed"
    e.policies(False)
    s.until("client", BACKEND_PORT, "ok", 20)
    assert s.matrix() == OPEN


def test_calico_global_network_policy_is_enforced(enforcement: Enforcement) -> None:
    """A GlobalNetworkPolicy stored as calicoctl writes it (crd.projectcalico.org/v1) is enforced, and only where it
    says: it denies frontend -> backend:8080 and nothing else."""
    e, s = enforcement, enforcement.scenario
    api = client.CustomObjectsApi(e.k8s)
    policy: dict[str, Any] = {"apiVersion": "crd.projectcalico.org/v1", "kind": "GlobalNetworkPolicy",
              "metadata": {"name": "deny-frontend-to-backend"},
              "spec": {"order": 10, "selector": "app == 'backend' && projectcalico.org/namespace == 'policy-demo'",
                       "types": ["Ingress"],
                       "ingress": [{"action": "Deny", "protocol": "TCP", "source": {"selector": "role == 'frontend'"},
                                    "destination": {"ports": [BACKEND_PORT]}},
                                   {"action": "Allow"}]}}
    api.create_cluster_custom_object("crd.projectcalico.org", "v1", "globalnetworkpolicies", policy)
    try:
        s.until("frontend", BACKEND_PORT, "timeout", 20)
        assert s.connect("client", BACKEND_PORT) == "ok"
    finally:
        api.delete_cluster_custom_object("crd.projectcalico.org", "v1", "globalnetworkpolicies", policy["metadata"]["name"])
    s.until("frontend", BACKEND_PORT, "ok", 20)


def test_felix_programs_nft_after_the_nodes_own_rules(enforcement: Enforcement) -> None:
    """Oracle Linux 8's edits as programmed by Felix 3.32: NFTablesMode is left at its new default, Auto, which with no
    kube-proxy nftables table on the node picks the iptables dataplane; FELIX_IPTABLESBACKEND=NFT puts its chains in the
    nft backend (none in legacy, no table of Felix's native nftables mode), each jump after a rule the node had before
    it (Append); the machine's own namespace has no Calico rule at all."""
    node = enforcement.node
    state = node.calico_state()
    assert state["release"] == f"v{UPGRADES[-1]}" and "FELIX_NFTABLESMODE" not in state["felix_env"]
    assert state["felix_env"]["FELIX_IPTABLESBACKEND"] == "NFT"
    felix_log = (Path(state["logs"]) / "felix.log").read_text()
    decided = [line for line in felix_log.splitlines() if "Determined whether or not to use nftables" in line]
    assert decided and all('calicoMode="Auto"' in line and "useNftables=false" in line for line in decided), decided
    tables = node.node_exec("nft", "list", "tables").stdout
    assert "table ip filter" in tables and "table ip calico" not in tables, tables
    forward = node.node_exec("iptables-nft", "-S", "FORWARD").stdout.splitlines()
    ours = next(i for i, rule in enumerate(forward) if NODE_RULE_COMMENT in rule)
    calico = next(i for i, rule in enumerate(forward) if "-j cali-FORWARD" in rule)
    assert ours < calico, forward
    saved = node.node_exec("iptables-nft-save").stdout
    assert saved.count(":cali-") >= 20, saved[:2000]
    legacy = node.node_exec("iptables-legacy-save")
    assert legacy.returncode == 0 and "cali-" not in legacy.stdout
    assert "cali-" in node.node_exec("nft", "list", "ruleset").stdout
    machine = subprocess.run(["iptables-nft-save"], capture_output=True, text=True, check=True).stdout
    assert "cali-" not in machine, "a Calico rule reached the machine's own network namespace"


def test_an_accept_ahead_of_felixs_jump_fails_the_components_check_and_verify(enforcement: Enforcement) -> None:
    """The component's check passes when re-run (`pulumi up --replace` of the check). With `-I FORWARD 1 -j ACCEPT`
    in the node's namespace (as some node images and agents add), Felix's appended jump is never reached: `verify` and
    the component's check (re-run by a change of verifyPolicyNodes) both fail at default-deny naming the node, with
    "traffic accepted before Calico's rules" among the causes, calico-node staying Ready. Once the rule is gone, a
    plain `up` runs the failed check again and it passes; nothing is left behind."""
    e = enforcement
    summary = f"verify: policy enforced on 1 of 1 nodes checked ({e.node.name})"
    e.stack("up", "--yes", "--skip-preview", "--replace", policy_check_urn(e))
    assert summary in e.stack.transcript[-1][1], e.stack.transcript[-1][1]
    e.node.node_exec("iptables-nft", "-I", "FORWARD", "1", "-j", "ACCEPT")
    try:
        failed = verify(e, e.node.name)
        assert failed.returncode == 1, failed.stdout
        assert f"{e.node.name}: FAILED at step 'default-deny'" in failed.stderr, failed.stderr
        assert CHAIN_CAUSE in failed.stderr
        e.stack("config", "set", "verifyPolicyNodes", "2")
        component = e.stack("up", "--yes", "--skip-preview", check=False)
        out = e.stack.transcript[-1][1]
        assert component.returncode != 0 and "verify: policy NOT enforced on " + e.node.name in out, out
        assert f"{e.node.name}: FAILED at step 'default-deny'" in out and CHAIN_CAUSE in out, out
        assert e.node.calico_state()["ready"]
    finally:
        e.node.node_exec("iptables-nft", "-D", "FORWARD", "-j", "ACCEPT")
    e.stack("up", "--yes", "--skip-preview")
    assert summary in e.stack.transcript[-1][1], e.stack.transcript[-1][1]
    assert check_leftovers(e) == []


def test_drift_of_the_interface_prefix_breaks_policy_and_refresh_repairs_it(enforcement: Enforcement) -> None:
    """`verify` passes after the upgrades to 3.32.0. Removing FELIX_INTERFACEPREFIX by hand restarts the node's Calico
    with the drifted env and the deny stops being enforced (Felix polices cali* interfaces, the pods' are oci*):
    `verify` now fails at default-deny naming the node, the interface prefix first among the causes, and leaves
    nothing behind; `pulumi up --refresh` puts the edit back and the deny is enforced again."""
    e, s = enforcement, enforcement.scenario
    passed = verify(e, e.node.name)
    assert passed.returncode == 0 and "verify: policy enforced on 1 of 1" in passed.stdout, passed.stderr
    e.policies(True)
    s.until("client", BACKEND_PORT, "timeout", 20)
    before = e.node.calico_state()["uid"]
    subprocess.run([str(e.kubectl), "--kubeconfig", str(e.cp.kubeconfig_path), "-n", "kube-system", "set", "env",
                    "daemonset/calico-node", "-c", "calico-node", "FELIX_INTERFACEPREFIX-"],
                   check=True, capture_output=True, timeout=60)
    drifted = e.calico_restarted(before)
    assert "FELIX_INTERFACEPREFIX" not in drifted["felix_env"]
    s.until("client", BACKEND_PORT, "ok", 30)
    failed = verify(e, e.node.name)
    assert failed.returncode == 1, failed.stdout
    assert f"{e.node.name}: FAILED at step 'default-deny'" in failed.stderr and "1. the interface prefix" in failed.stderr
    assert failed.stderr.strip().splitlines()[-1] == (f"error: policy NOT enforced on {e.node.name}: {e.node.name} "
                                                      "failed at step 'default-deny' (details above)")
    assert check_leftovers(e) == []
    e.stack("up", "--refresh", "--yes", "--skip-preview")
    repaired = e.calico_restarted(drifted["uid"])
    assert repaired["felix_env"]["FELIX_INTERFACEPREFIX"] == "oci"
    s.until("client", BACKEND_PORT, "timeout", 30)
    assert s.matrix() == ENFORCED
