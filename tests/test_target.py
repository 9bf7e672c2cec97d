"""One cluster per component: which cluster a kubeconfig names, two inputs naming two clusters, another network
provider found on the cluster, and OKE read through the component's one OCI configuration (the OCI stand-in)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from calico_component import Calico, CalicoArgs
from calico_component.cluster import networks, oke
from calico_component.cluster.kube import identity
from calico_component.cluster.oci_api import OciSettings
from calico_component.cluster.oke_addon import disable_addon
from calico_component.component.target import TwoClustersError, disagreement
from calico_component.errors import FlannelRemovalError
from tests.conftest import OKE_CLUSTER, kubeconfig_text, mirror_path
from tests.fake_oke import FakeOke, Pool, write_oci_config
from tests.test_component import Recorder, run_program

OTHER = "ocid1.cluster.oc1.iad.bbbbbbbbother"


def _oke_kubeconfig(cluster_id: str, server: str = "https://10.0.0.5:6443", token_args: tuple[str, ...] = (),
                    joined: bool = False) -> str:
    """An OKE kubeconfig whose token command names ``cluster_id`` (``--cluster-id=<id>`` when ``joined``)."""
    named = [f"--cluster-id={cluster_id}"] if joined else ["--cluster-id", cluster_id]
    doc = {"apiVersion": "v1", "kind": "Config", "current-context": "ctx",
           "clusters": [{"name": "c", "cluster": {"server": server, "certificate-authority-data": "Y2E="}}],
           "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
           "users": [{"name": "u", "user": {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1",
                                                     "command": "oci", "args": ["ce", "cluster", "generate-token",
                                                                                *named, *token_args]}}}]}
    return yaml.safe_dump(doc)


def test_a_kubeconfig_names_its_cluster_whatever_its_token() -> None:
    """An OKE kubeconfig is its cluster's OCID; another kubeconfig is its server with its CA. A rotated token keeps
    the identity; another server, another CA or another OKE cluster changes it."""
    assert identity(_oke_kubeconfig(OKE_CLUSTER)) == OKE_CLUSTER
    assert identity(_oke_kubeconfig(OTHER)) == OTHER
    assert identity(_oke_kubeconfig(OTHER, joined=True)) == OTHER  # --cluster-id=<id>, as some tools write it
    base = identity(kubeconfig_text(token="first-token-0123456789"))
    assert base.startswith("https://127.0.0.1:6443 ")
    assert identity(kubeconfig_text(token="rotated-token-0123456789")) == base
    assert identity(kubeconfig_text(server="https://10.0.0.9:6443")) != base
    with_ca = kubeconfig_text().replace("    server:", "    certificate-authority-data: Y2E=\n    server:")
    assert identity(with_ca) != base


def test_cluster_id_and_kubeconfig_must_name_one_cluster() -> None:
    """The token command's --cluster-id (or --cluster-id=) decides for an OKE kubeconfig; without one, the server must
    be one of OKE's endpoints for cluster_id (a URL without a port is at 443); when neither can be told, nothing is
    refused."""
    assert disagreement(OKE_CLUSTER, _oke_kubeconfig(OKE_CLUSTER), ()) is None
    problem = disagreement(OKE_CLUSTER, _oke_kubeconfig(OTHER), ())
    assert problem is not None and OKE_CLUSTER in problem and OTHER in problem and "Nothing was changed" in problem
    assert disagreement(OKE_CLUSTER, _oke_kubeconfig(OKE_CLUSTER, joined=True), ("10.9.9.9:6443",)) is None
    problem = disagreement(OKE_CLUSTER, _oke_kubeconfig(OTHER, joined=True), ("10.0.0.5:6443",))
    assert problem is not None and f"names cluster {OTHER}" in problem
    assert disagreement(OKE_CLUSTER, kubeconfig_text(server="https://10.0.0.5:6443"), ("10.0.0.5:6443",)) is None
    assert disagreement(OKE_CLUSTER, kubeconfig_text(server="https://10.0.0.5"), ("10.0.0.5:443",)) is None
    problem = disagreement(OKE_CLUSTER, kubeconfig_text(server="https://10.0.0.5"), ("10.0.0.5:6443",))
    assert problem is not None and "10.0.0.5:443 is none of OKE's endpoints" in problem
    problem = disagreement(OKE_CLUSTER, kubeconfig_text(server="https://10.9.9.9:6443"), ("10.0.0.5:6443",
                                                                                         "132.145.1.1:6443"))
    assert problem is not None and "10.9.9.9:6443 is none of OKE's endpoints" in problem
    assert disagreement(OKE_CLUSTER, kubeconfig_text(server="https://10.9.9.9:6443"), ()) is None


_ARGS: dict[str, Any] = dict(calico_version="3.32.0", network_type="vcn-native", node_os="oracle-linux-8",
                             cluster_id=OKE_CLUSTER)


def _installs(kubeconfig: str) -> Recorder:
    """What a preview of Calico for OKE_CLUSTER with ``kubeconfig`` registers (asserting it installed Calico)."""
    rec = Recorder()
    run_program(rec, lambda: Calico("calico", CalicoArgs(**_ARGS, manifest_mirror=str(mirror_path()),
                                                         kubeconfig=kubeconfig)))
    assert ("calico-oke:index:Calico", "calico") in [(t, n) for t, n, _i in rec.registered]
    assert "calico-daemonset-kube-system-calico-node" in [n for _t, n, _i in rec.registered]
    return rec


def _refused(kubeconfig: str, match: str) -> None:
    """A preview of Calico for OKE_CLUSTER with ``kubeconfig`` is refused (TwoClustersError matching ``match``)
    before anything, the component included, is registered."""
    rec = Recorder()
    with pytest.raises(TwoClustersError, match=match):
        run_program(rec, lambda: Calico("calico", CalicoArgs(**_ARGS, manifest_mirror=str(mirror_path()),
                                                             kubeconfig=kubeconfig)))
    assert rec.registered == []


@pytest.mark.usefixtures("ownership_checks")
def test_two_clusters_are_refused_before_anything_is_registered(oke: FakeOke) -> None:
    """cluster_id for one cluster with the kubeconfig of another: the constructor refuses naming both, nothing (not
    even the component) registered; the kubeconfig of that same cluster installs."""
    _installs(_oke_kubeconfig(OKE_CLUSTER))
    _refused(_oke_kubeconfig(OTHER), rf"cluster_id {OKE_CLUSTER} and kubeconfig name two different clusters: .* "
                                     rf"names cluster {OTHER}")


@pytest.mark.usefixtures("ownership_checks")
def test_a_kubeconfig_without_token_command_must_be_at_one_of_okes_endpoints(
        oke: FakeOke, monkeypatch: pytest.MonkeyPatch) -> None:
    """With cluster_id and a plain kubeconfig string naming no cluster, the constructor asks OKE for the cluster's
    endpoints: a kubeconfig at its public or its private endpoint installs; one at another server is refused, naming
    that server and OKE's endpoints, before anything is registered."""
    oke.kubernetes_endpoint = "10.0.0.5:6443"
    described = oke._cluster
    monkeypatch.setattr(oke, "_cluster", lambda: {**described(), "endpoints": {
        "kubernetes": "10.0.0.5:6443", "publicEndpoint": "10.0.0.5:6443", "privateEndpoint": "10.0.10.7:6443"}})
    _installs(kubeconfig_text(server="https://10.0.0.5:6443"))
    _installs(kubeconfig_text(server="https://10.0.10.7:6443"))
    _refused(kubeconfig_text(server="https://10.9.9.9:6443"), r"the kubeconfig's server 10\.9\.9\.9:6443 is none of "
             r"OKE's endpoints for it \(10\.0\.0\.5:6443, 10\.0\.10\.7:6443\)")
    assert oke.requests[f"GET /20180222/clusters/{OKE_CLUSTER}"] == 3


def _ds(namespace: str, name: str) -> dict[str, Any]:
    return {"metadata": {"namespace": namespace, "name": name}}


def test_another_network_provider_is_found_and_a_hand_install_is_not() -> None:
    """calico-node in kube-system (a hand install from the same manifest: the ownership check's business) and flannel
    are not other providers; the operator's namespaces and Installations, calico-node elsewhere, Cilium, Antrea,
    kube-router and Weave are, each named with where it was found."""
    mine = [_ds("kube-system", "calico-node"), _ds("kube-system", "kube-flannel-ds"), _ds("kube-system", "kube-proxy")]
    assert networks.found_in(mine, [], []) == []
    assert networks.problem([]) is None
    found = networks.found_in([*mine, _ds("calico-system", "calico-node"), _ds("kube-system", "cilium"),
                               _ds("kube-system", "antrea-agent"), _ds("kube-system", "kube-router"),
                               _ds("kube-system", "weave-net")], ["tigera-operator"], ["default"])
    assert [(f.provider, f.where) for f in found] == [
        ("Calico managed by the Tigera operator", "namespace tigera-operator"),
        ("Calico managed by the Tigera operator", "Installation default"),
        ("Calico", "DaemonSet calico-system/calico-node"), ("Cilium", "DaemonSet kube-system/cilium"),
        ("Antrea", "DaemonSet kube-system/antrea-agent"), ("kube-router", "DaemonSet kube-system/kube-router"),
        ("Weave Net", "DaemonSet kube-system/weave-net")]
    message = networks.problem(found)
    assert message is not None and "Tigera operator" in message and "Nothing was changed" in message
    assert "Remove it first" in str(networks.problem([f for f in found if f.provider == "Cilium"]))


def test_okes_kubeconfig_authenticates_as_every_other_oci_call() -> None:
    """With the default settings the kubeconfig OKE serves is kept as it is; with instance principals, a profile, a
    config file or a region, its token command gets the same (replacing a value OKE put there)."""
    served = _oke_kubeconfig(OKE_CLUSTER, token_args=("--region", "us-ashburn-1"))
    assert oke.with_auth(served, OciSettings()) == served
    changed = yaml.safe_load(oke.with_auth(served, OciSettings(auth="instance_principal", region="eu-frankfurt-1")))
    args = changed["users"][0]["user"]["exec"]["args"]
    assert args[args.index("--auth") + 1] == "instance_principal"
    assert args[args.index("--region") + 1] == "eu-frankfurt-1" and args.count("--region") == 1
    args = yaml.safe_load(oke.with_auth(served, OciSettings(profile="ops", config_file="/etc/oci/config")))[
        "users"][0]["user"]["exec"]["args"]
    assert args[args.index("--profile") + 1] == "ops" and args[args.index("--config-file") + 1] == "/etc/oci/config"
    assert "--auth" not in args


def _settings(server: FakeOke, tmp_path: Path) -> OciSettings:
    return OciSettings(config_file=str(write_oci_config(tmp_path)), endpoint=server.endpoint)


def test_node_counts_are_right_for_every_pool_shape(tmp_path: Path) -> None:
    """A pool that states its size is counted by it; one without node_config_details (ListNodePools gives no count)
    is counted by the nodes GetNodePool lists; a deleted pool counts nothing; virtual pools are named."""
    with FakeOke(pools=[Pool("sized", 3), Pool("listed", 2, size_in_details=False),
                        Pool("gone", 5, state="DELETED")], virtual_pools=["vnp"]) as server:
        settings = _settings(server, tmp_path)
        facts = oke.read_node_pools(settings, oke.read_cluster(settings, server.cluster_id))
        assert facts.node_count == 5 and facts.virtual_node_pools == ("vnp",)
        assert server.requests["GET /20180222/nodePools/ocid1.nodepool.oc1..pool.1"] == 1
        assert server.requests["GET /20180222/nodePools/ocid1.nodepool.oc1..pool.0"] == 0


def test_an_addon_name_oke_does_not_know_is_an_error_naming_the_addons(tmp_path: Path) -> None:
    """An ACTIVE Flannel add-on is disabled by its name, and once removed, disabling it again is success (ABSENT); a
    name OKE offers for no cluster (a typo) fails, naming the add-ons the cluster has and those OKE offers, and
    disables nothing: the cluster's ACTIVE Flannel add-on stays."""
    flannel = f"DELETE /20180222/clusters/{OKE_CLUSTER}/addons/Flannel"
    with FakeOke(addons={"CoreDNS": "ACTIVE", "Flannel": "ACTIVE"}) as server:
        props = {"cluster_id": server.cluster_id, "addon_name": "Flannel", "endpoint": server.endpoint,
                 "config_file": str(write_oci_config(tmp_path)), "timeout_seconds": 5, "poll_seconds": 0.05,
                 "retry_base_seconds": 0.05}
        assert disable_addon(props)["addon_state"] == "DELETED"
        assert server.requests[flannel] == 1 and "Flannel" not in server.addons
        assert disable_addon(props)["addon_state"] == "ABSENT"
        server.addons["Flannel"] = "ACTIVE"  # enabled again
        with pytest.raises(FlannelRemovalError, match=r"OKE has no add-on named 'Flanel': cluster .* has CoreDNS, "
                                                      r"Flannel, and OKE offers CertManager, CoreDNS, Flannel, "
                                                      r".*flannel_addon_name"):
            disable_addon({**props, "addon_name": "Flanel"})
        assert [r for r in server.requests if r.startswith("DELETE")] == [flannel] and server.requests[flannel] == 1
        assert server.addons["Flannel"] == "ACTIVE"
