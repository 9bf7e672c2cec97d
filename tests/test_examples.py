"""Every example program and the stack program run under Pulumi mocks and build what their READMEs promise."""

from __future__ import annotations

import runpy
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi
import pytest

from calico_component.steps.types import ROLLOUT_AWAITED
from tests.conftest import OKE_CLUSTER, REPO, kubeconfig_text, mirror_path, upstream_image, upstream_objects
from tests.e2e.readme import OKE_PROGRAM, marked_block
from tests.fake_oke import FakeOke, Pool
from tests.test_component import _is_secret

#: No cluster here: the component's ownership check only records what it was asked (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("ownership_checks", "oke")

CLUSTER = OKE_CLUSTER
#: What the examples install unless calicoVersion says otherwise: Oracle's row for Kubernetes 1.36, OKE's newest.
EXAMPLES_VERSION = "3.32.0"


class ExampleMocks(pulumi.runtime.Mocks):
    """Answers the OCI lookups examples make and records registrations in order."""

    def __init__(self) -> None:
        self.registered: list[tuple[str, str, dict[str, Any]]] = []
        self.lock = threading.Lock()

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        with self.lock:
            self.registered.append((args.typ, args.name, args.inputs))
        return f"ocid1.{args.name}.mock", args.inputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        if args.token == "oci:Identity/getAvailabilityDomains:getAvailabilityDomains":
            return {"availabilityDomains": [{"name": "Uocm:US-ASHBURN-AD-1"}]}, []
        raise AssertionError(f"unexpected invoke {args.token}")

    def names(self, typ: str) -> list[str]:
        return [n for t, n, _ in self.registered if t == typ]


def _calico_node_image(m: ExampleMocks) -> str:
    """The image of the calico-node container in the calico-node DaemonSet the program registered."""
    ds = next(i for t, n, i in m.registered if t == "kubernetes:apps/v1:DaemonSet" and n.endswith("calico-node"))
    return str(next(c["image"] for c in ds["spec"]["template"]["spec"]["containers"] if c["name"] == "calico-node"))


def run_program(path: Path, project: str, config: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                mocks: ExampleMocks | None = None,
                check: Callable[[dict[str, Any]], pulumi.Output[Any]] | None = None) -> ExampleMocks:
    """Run the program at ``path`` under ``mocks``; ``check`` gets its globals and returns an Output to await."""
    monkeypatch.setenv("CALICO_OKE_MANIFEST_MIRROR", str(mirror_path()))
    mocks = mocks or ExampleMocks()
    pulumi.runtime.set_mocks(mocks, project=project, stack="test", preview=False)
    pulumi.runtime.set_all_config({f"{project}:{k}": v for k, v in config.items()})

    @pulumi.runtime.test
    def program() -> pulumi.Output[Any] | None:
        program_globals = runpy.run_path(str(path), run_name="__main__")
        return check(program_globals) if check else None

    try:
        program()
    finally:
        pulumi.runtime.set_all_config({})
    return mocks


def test_new_flannel_cluster_example(monkeypatch: pytest.MonkeyPatch, oke: FakeOke) -> None:
    """The new-cluster example builds VCN, cluster, Calico with flannel removal (on the cluster it creates, through the
    kubeconfig OKE serves for it), and a node pool after Calico."""
    oke.cluster_id = "ocid1.cluster.mock"  # the id the mocks give the example's cluster
    m = run_program(REPO / "examples/new-flannel-cluster/__main__.py", "calico-oke-new-flannel-cluster",
                    {"compartmentId": "ocid1.compartment.oc1..x", "nodeImageId": "ocid1.image.oc1..x"}, monkeypatch)
    order = [n for _, n, _ in m.registered]
    assert m.names("oci:ContainerEngine/cluster:Cluster") == ["cluster"]
    cluster = next(i for t, n, i in m.registered if n == "cluster")
    assert cluster["clusterPodNetworkOptions"] == [{"cniType": "FLANNEL_OVERLAY"}]
    assert cluster["type"] == "ENHANCED_CLUSTER"
    assert order.index("calico-flannel-addon") < order.index("calico-flannel-daemonset")
    calico_children = [n for t, n, _ in m.registered if t.startswith("kubernetes:")]
    assert len(calico_children) == len(upstream_objects(EXAMPLES_VERSION, "calico.yaml"))
    assert _calico_node_image(m) == upstream_image(EXAMPLES_VERSION)
    last_calico = max(order.index(n) for n in calico_children)
    assert order.index("workers") > last_calico
    # The example's comment: the kubeconfig (not secret as OKE returns it) is stored only inside secrets.
    from pulumi.runtime.rpc import _special_secret_sig, _special_sig_key

    holders = [i for t, n, i in m.registered if n in ("calico-k8s", "calico-k8s-crds", "calico-flannel-daemonset")]
    assert len(holders) == 3
    assert all(i["kubeconfig"].get(_special_sig_key) == _special_secret_sig for i in holders)


def test_existing_vcn_native_example(monkeypatch: pytest.MonkeyPatch, oke: FakeOke) -> None:
    """The existing-cluster example installs every policy-only Calico object, waits for calico-node's rollout by
    progress (through the kubeconfig OKE serves for the cluster, kept secret) and touches no flannel or OCI add-on."""
    m = run_program(REPO / "examples/existing-vcn-native/__main__.py", "calico-oke-existing-vcn-native",
                    {"clusterId": CLUSTER}, monkeypatch)
    installed = [t for t, _, _ in m.registered if t.startswith("kubernetes:")]
    assert len(installed) == len(upstream_objects(EXAMPLES_VERSION, "calico-policy-only.yaml"))
    assert _calico_node_image(m) == upstream_image(EXAMPLES_VERSION)
    assert [n for t, n, _ in m.registered if t == ROLLOUT_AWAITED.token] == ["calico-calico-node-rollout"]
    rollout = next(i for t, _n, i in m.registered if t == ROLLOUT_AWAITED.token)
    assert _is_secret(rollout["kubeconfig"]) and rollout["kubeconfig"]["value"] == oke.kubeconfig()
    assert not [n for _, n, _ in m.registered if "flannel" in n]
    assert not [t for t, _, _ in m.registered if t.startswith("oci:")]


def test_readme_program_for_a_real_oke_cluster(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, oke: FakeOke) -> None:
    """The README's program, given only clusterId: the cluster's CNI and node OS are read from OKE (policy-only
    manifest, the NFT backend of Oracle Linux 8), and Calico 3.32.0 goes to the cluster through the kubeconfig OKE
    serves for it, kept secret."""
    program = tmp_path / "__main__.py"
    program.write_text(marked_block(OKE_PROGRAM, "python"))
    oke.cni_type, oke.kubernetes_version = "OCI_VCN_IP_NATIVE", "v1.36.1"
    oke.pools = [Pool("workers", 3, "Oracle-Linux-8.10-2026.08.30-0-OKE-1.36.1-900")]

    def resolved(program_globals: dict[str, Any]) -> pulumi.Output[Any]:
        calico = program_globals["calico"]

        def check(values: list[Any]) -> None:
            assert values == ["vcn-native", "oracle-linux-8", EXAMPLES_VERSION]

        return pulumi.Output.all(calico.network_type, calico.node_os, calico.calico_version).apply(check)

    m = run_program(program, "my-oke", {"clusterId": OKE_CLUSTER}, monkeypatch, None, resolved)
    assert oke.requests[f"GET /20180222/clusters/{OKE_CLUSTER}"] >= 1 and oke.requests["GET /20180222/nodePools"] == 1
    assert oke.requests[f"POST /20180222/clusters/{OKE_CLUSTER}/kubeconfig/content"] >= 1
    installed = [t for t, _, _ in m.registered if t.startswith("kubernetes:")]
    assert len(installed) == len(upstream_objects(EXAMPLES_VERSION, "calico-policy-only.yaml"))
    assert _calico_node_image(m) == upstream_image(EXAMPLES_VERSION)
    ds = next(i for t, n, i in m.registered if t == "kubernetes:apps/v1:DaemonSet" and n.endswith("calico-node"))
    env = {e["name"]: e.get("value") for c in ds["spec"]["template"]["spec"]["containers"] for e in c.get("env", [])}
    assert env["FELIX_IPTABLESBACKEND"] == "NFT" and env["FELIX_INTERFACEPREFIX"] == "oci"
    providers = [i for t, _, i in m.registered if t == "pulumi:providers:kubernetes"]
    assert providers and all(_is_secret(p["kubeconfig"]) and p["kubeconfig"]["value"] == oke.kubeconfig()
                             for p in providers)


def test_network_policy_demo_example(monkeypatch: pytest.MonkeyPatch) -> None:
    """The policy demo adds a default-deny and a label-based allow NetworkPolicy after Calico."""
    m = run_program(REPO / "examples/network-policy-demo/__main__.py", "calico-oke-network-policy-demo",
                    {"kubeconfig": kubeconfig_text()}, monkeypatch)
    policies = {n: i for t, n, i in m.registered if t == "kubernetes:networking.k8s.io/v1:NetworkPolicy"}
    assert policies["default-deny"]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    allow = policies["allow-frontend"]["spec"]
    assert allow["podSelector"] == {"matchLabels": {"app": "backend"}}
    assert allow["ingress"][0]["from"] == [{"podSelector": {"matchLabels": {"role": "frontend"}}}]
    order = [n for _, n, _ in m.registered]
    calico_last = max(i for i, (t, n, _) in enumerate(m.registered) if n.startswith("calico-"))
    assert order.index("default-deny") > calico_last
    assert m.names("pulumi:providers:kubernetes").count("cluster") == 1, "the demo goes to the kubeconfig's cluster"


def test_network_policy_demo_beside_a_calico_it_does_not_manage(monkeypatch: pytest.MonkeyPatch) -> None:
    """installCalico=false deploys only the demo (no Calico object); policies=false leaves the two policies out."""
    m = run_program(REPO / "examples/network-policy-demo/__main__.py", "calico-oke-network-policy-demo",
                    {"kubeconfig": kubeconfig_text(), "installCalico": "false", "policies": "false"}, monkeypatch)
    assert not [n for t, n, _ in m.registered if t == "calico-oke:index:Calico" or n.startswith("calico-")]
    assert not m.names("kubernetes:networking.k8s.io/v1:NetworkPolicy")
    assert m.names("kubernetes:apps/v1:Deployment") == ["backend"]


def test_stack_program(monkeypatch: pytest.MonkeyPatch) -> None:
    """The root stack program reads its settings from pulumi config and installs Calico."""
    m = run_program(REPO / "__main__.py", "calico-oke",
                    {"calicoVersion": "3.29.2", "networkType": "flannel-overlay", "nodeOs": "oracle-linux-7",
                     "kubeconfig": kubeconfig_text(), "disableFlannelAddon": "false", "podCidr": "10.32.0.0/16",
                     "typha": "on", "typhaReplicas": "2", "adoptExisting": "true"}, monkeypatch)
    assert "calico-flannel-daemonset" in [n for _, n, _ in m.registered]
    assert "calico-flannel-addon" not in [n for _, n, _ in m.registered]
    ds = next(i for t, n, i in m.registered if n == "calico-daemonset-kube-system-calico-node")
    container = ds["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "docker.io/calico/node:v3.29.2"
    assert {"name": "CALICO_IPV4POOL_CIDR", "value": "10.32.0.0/16"} in container["env"]
    typha = next(i for t, n, i in m.registered if n == "calico-deployment-kube-system-calico-typha")
    assert typha["spec"]["replicas"] == 2
    provider = next(i for t, n, i in m.registered if n == "calico-k8s")
    assert provider["upsertExistingObjects"] == "true"
