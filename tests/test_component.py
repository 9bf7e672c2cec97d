"""The Calico component under Pulumi mocks: children, names, parents, ordering, flannel steps and guards."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pytest
import yaml

from calico_component import Calico, CalicoArgs
from calico_component.errors import (
    ClusterAuthError,
    ClusterUnreachableError,
    CompatibilityError,
    ConfigurationError,
    GuardError,
)
from calico_component.steps.types import BY_TOKEN, DAEMONSET_ABSENT, OKE_ADDON_DISABLED
from tests.conftest import OKE_CLUSTER, OwnershipCall, kubeconfig_text, mirror_path, upstream_objects
from tests.fake_oke import FakeOke, Pool

#: No cluster here: the component's ownership check only records what it was asked (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("ownership_checks", "oke")

CLUSTER = OKE_CLUSTER


@dataclass
class Recorder(pulumi.runtime.Mocks):
    """Records every registration (the OKE lookups are OCI SDK calls, answered by the ``oke`` stand-in)."""

    registered: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    providers: dict[str, str] = field(default_factory=dict)  # child name -> provider reference
    lock: threading.Lock = field(default_factory=threading.Lock)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        with self.lock:
            self.registered.append((args.typ, args.name, args.inputs))
            self.providers[args.name] = args.provider or ""
        return f"{args.name}-id", args.inputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        raise AssertionError(f"unexpected invoke {args.token}: the component makes no Pulumi invokes")

    def by_type(self, typ: str) -> list[tuple[str, str, dict[str, Any]]]:
        return [r for r in self.registered if r[0] == typ]


@pytest.fixture()
def mocks(oke: FakeOke) -> Iterator[Recorder]:
    rec = Recorder()
    pulumi.runtime.set_mocks(rec, preview=False)
    yield rec


def users_provider() -> pulumi.ResourceOptions:
    """Resource options passing a Kubernetes provider: the user's explicit choice of cluster, without kubeconfig or
    cluster_id."""
    import pulumi_kubernetes as k8s

    return pulumi.ResourceOptions(providers={"kubernetes": k8s.Provider("users-cluster", kubeconfig=kubeconfig_text())})


def _calico(**kw: Any) -> Calico:
    """Calico("calico", ...) with ``kw`` over the defaults; naming no cluster, it gets the user's provider in opts."""
    args = _args(**kw)
    named = args.kubeconfig is not None or args.cluster_id is not None
    return Calico("calico", args, None if named else users_provider())


def _args(**kw: Any) -> CalicoArgs:
    base: dict[str, Any] = dict(calico_version="3.28.0", network_type="vcn-native", node_os="oracle-linux-8",
                                manifest_mirror=str(mirror_path()))
    base.update(kw)
    return CalicoArgs(**base)


def _k8s(rec: Recorder) -> list[tuple[str, str, dict[str, Any]]]:
    return [r for r in rec.registered if r[0].startswith("kubernetes:") and r[0] != "pulumi:providers:kubernetes"]


def _api_kind(typ: str) -> tuple[str, str]:
    _, api, kind = typ.split(":")
    return api.removeprefix("core/"), kind


def _settled(calico: Calico) -> pulumi.Output[list[Any]]:
    """Every child's URN: a program returning it ends once each of the component's children is registered."""
    return pulumi.Output.all(*[c.urn for c in calico._children.values()])


def run_program(rec: Recorder, build: Callable[[], object], preview: bool = True) -> None:
    """Run ``build`` as a whole Pulumi program under ``rec``, awaiting what it returns (``_settled``, say). Its error
    is raised only once every registration it started has reached ``rec``: right after a constructor raises, a
    registration it made is still in flight, so ``rec.registered`` looks empty whatever was registered."""
    pulumi.runtime.set_mocks(rec, preview=preview)

    @pulumi.runtime.test
    def program() -> object:
        return build()

    program()


@pulumi.runtime.test
def test_vcn_native_registers_one_child_per_object(mocks: Recorder, oke: FakeOke) -> Any:
    """v3.28.0 vcn-native: 34 typed children, names from kind/namespace/name, documented calico-node DaemonSet."""
    calico = _calico()

    def check(values: list[Any]) -> None:
        count, names, urns = values
        assert count == 34
        k8s = _k8s(mocks)
        assert len(k8s) == 34
        upstream = upstream_objects("3.28.0", "calico-policy-only.yaml")
        assert sorted((*_api_kind(t), i["metadata"]["name"]) for t, _, i in k8s) == sorted(
            (o["apiVersion"], o["kind"], o["metadata"]["name"]) for o in upstream)
        assert "calico-daemonset-kube-system-calico-node" in names
        assert "calico-customresourcedefinition-ippools.crd.projectcalico.org" in names
        assert not any("3.28" in n for n in names)
        assert all("calico-oke:index:Calico$kubernetes:" in u for u in urns)
        ds = next(i for t, n, i in k8s if n == "calico-daemonset-kube-system-calico-node")
        pod = ds["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert "initContainers" not in pod and "envFrom" not in container
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["FELIX_INTERFACEPREFIX"] == "oci" and env["NO_DEFAULT_POOLS"] == "true"
        assert env["FELIX_CHAININSERTMODE"] == "Append" and env["FELIX_IPTABLESMANGLEALLOWACTION"] == "Return"
        assert env["FELIX_IPTABLESBACKEND"] == "NFT" and "FELIX_TYPHAK8SSERVICENAME" not in env
        assert not {"cni-bin-dir", "cni-net-dir", "cni-log-dir"} & {v["name"] for v in pod["volumes"]}
        assert not [r for r in mocks.registered if r[0] in BY_TOKEN]
        assert not oke.requests, "no OCI call without cluster_id"

    urns = _settled(calico)
    return pulumi.Output.all(calico.object_count, calico.resource_names, urns).apply(check)


@pulumi.runtime.test
def test_crds_registered_before_the_workloads(mocks: Recorder) -> Any:
    """Every CustomResourceDefinition reaches the engine before calico-node and the Deployments that read them."""
    calico = _calico()

    def check(_: Any) -> None:
        kinds = [t for t, _, _ in _k8s(mocks)]
        last_crd = max(i for i, t in enumerate(kinds) if t.endswith(":CustomResourceDefinition"))
        first_workload = min(i for i, t in enumerate(kinds) if t.endswith((":DaemonSet", ":Deployment")))
        assert last_crd < first_workload

    return _settled(calico).apply(check)


@pulumi.runtime.test
def test_flannel_overlay_removal_steps_come_first(mocks: Recorder, oke: FakeOke) -> Any:
    """flannel-overlay: add-on disable, then kube-flannel-ds removal, then 31 Calico objects from calico.yaml. The
    add-on step goes to OKE as the component's lookups did (its OCI endpoint and config file), and, the node pools
    having been read, it is the step that guards existing nodes: kube-flannel-ds's removal does not ask Kubernetes."""
    config_file = os.environ["OCI_CONFIG_FILE"]  # the oke fixture's; passed, since unset the step gets None
    calico = _calico(network_type="flannel-overlay", cluster_id=CLUSTER, kubeconfig=kubeconfig_text(),
                     oci_config_file=config_file)

    def check(_: Any) -> None:
        order = [n for t, n, _ in mocks.registered if t not in ("pulumi:providers:kubernetes", "calico-oke:index:Calico")]
        assert order[:2] == ["calico-flannel-addon", "calico-flannel-daemonset"]
        assert len(_k8s(mocks)) == 31
        addon = next(i for t, n, i in mocks.registered if n == "calico-flannel-addon")
        assert addon["clusterId"] == CLUSTER and addon["addonName"] == "Flannel"
        assert addon["existingNodeCount"] == 0
        assert addon["endpoint"] == oke.endpoint and addon["configFile"] == config_file
        ds = next(i for t, n, i in mocks.registered if n == "calico-flannel-daemonset")
        assert (ds["namespace"], ds["name"]) == ("kube-system", "kube-flannel-ds")
        assert ds["checkNodes"] is False
        assert mocks.by_type("pulumi:providers:kubernetes")
        assert oke.requests["GET /20180222/nodePools"] == 1

    return _settled(calico).apply(check)


@pulumi.runtime.test
def test_flannel_removal_without_addon_step(mocks: Recorder, oke: FakeOke) -> Any:
    """disable_flannel_addon=False skips the OKE step but still removes kube-flannel-ds, with no OCI lookups; with no
    add-on step to guard existing nodes, the kube-flannel-ds step checks them through Kubernetes."""
    calico = _calico(network_type="flannel-overlay", disable_flannel_addon=False,
                                    kubeconfig=kubeconfig_text())

    def check(_: Any) -> None:
        names = [n for _, n, _ in mocks.registered]
        assert "calico-flannel-daemonset" in names and "calico-flannel-addon" not in names
        ds = next(i for _t, n, i in mocks.registered if n == "calico-flannel-daemonset")
        secret = ds["kubeconfig"]  # a secret reaches the mocks as {<sig>: ..., "value": ...}
        assert isinstance(secret, dict) and yaml.safe_load(secret["value"]) == yaml.safe_load(kubeconfig_text())
        assert ds["checkNodes"] is True
        assert not oke.requests

    return _settled(calico).apply(check)


@pulumi.runtime.test
def test_names_stable_across_versions(mocks: Recorder) -> Any:
    """Objects present in two Calico versions get the same logical name, so upgrades update in place."""
    a = _calico(calico_version="3.28.0")
    b = Calico("calico2", _args(calico_version="3.29.2"), users_provider())

    def check(values: list[Any]) -> None:
        na = {n.removeprefix("calico-") for n in values[0]}
        nb = {n.removeprefix("calico2-") for n in values[1]}
        assert len(na & nb) >= 30
        assert "daemonset-kube-system-calico-node" in na & nb

    return pulumi.Output.all(a.resource_names, b.resource_names).apply(check)


@pulumi.runtime.test
def test_detection_from_cluster(mocks: Recorder, oke: FakeOke) -> Any:
    """With only cluster_id, network type and node OS come from the cluster and its node pool images."""
    oke.cni_type, oke.kubernetes_version = "OCI_VCN_IP_NATIVE", "v1.30.1"
    oke.pools = [Pool("p0", 3, "Oracle-Linux-8.10-2024.09.30-0-OKE-1.30.1-747")]
    calico = _calico(network_type=None, node_os=None, cluster_id=CLUSTER)

    def check(values: list[Any]) -> None:
        assert values == ["vcn-native", "oracle-linux-8", 34]

    return pulumi.Output.all(calico.network_type, calico.node_os, calico.object_count).apply(check)


@pytest.mark.parametrize(
    "setup, kwargs, error, needle",
    [
        (lambda m: None, dict(network_type="flannel-overlay"), ConfigurationError, "needs cluster_id"),
        (lambda m: setattr(m, "cni_type", "OCI_VCN_IP_NATIVE"), dict(network_type="flannel-overlay",
                                                                    cluster_id=CLUSTER), GuardError, "contradicts"),
        (lambda m: setattr(m, "virtual_pools", ["vnp1"]),
         dict(network_type="flannel-overlay", cluster_id=CLUSTER), GuardError, "virtual node pool"),
        (lambda m: None, dict(network_type=None), ConfigurationError, "required without cluster_id"),
        (lambda m: None, dict(network_type="weave"), ConfigurationError, "weave"),
        (lambda m: None, dict(calico_node_max_unavailable="0"), ConfigurationError,
         "calico_node_max_unavailable '0' is not a node count"),
        (lambda m: None, dict(calico_version="3.31.0"), ConfigurationError, "Calico 3.31.0 is not in Oracle"),
        (lambda m: None, dict(calico_version="3.28.0", strict_version_check=True, kubernetes_version="1.33"),
         CompatibilityError, "did not test Calico 3.28.0 on Kubernetes 1.33"),
        (lambda m: None, dict(node_os=None, cluster_id=pulumi.Output.from_input(CLUSTER)), ConfigurationError,
         "set both explicitly"),
    ],
)
def test_guards_fail_before_anything_is_registered(setup: Any, kwargs: dict[str, Any], error: type[Exception],
                                                   needle: str, oke: FakeOke) -> None:
    """Each refusal raises a clear error from the constructor, before anything (the component itself included) is
    registered, where the defaults register the component."""
    oke.cni_type = "FLANNEL_OVERLAY"
    setup(oke)
    installed = Recorder()
    run_program(installed, _calico)
    assert ("calico-oke:index:Calico", "calico") in [(t, n) for t, n, _i in installed.registered]
    rec = Recorder()
    with pytest.raises(error, match=needle):
        run_program(rec, lambda: _calico(**kwargs))
    assert [n for _t, n, _i in rec.registered if n != "users-cluster"] == []  # the test's own provider only


def _provider_inputs(rec: Recorder, name: str) -> dict[str, Any]:
    return next(i for t, n, i in rec.registered if t == "pulumi:providers:kubernetes" and n == name)


def _is_secret(value: Any) -> bool:
    from pulumi.runtime.rpc import _special_secret_sig, _special_sig_key

    return isinstance(value, dict) and value.get(_special_sig_key) == _special_secret_sig


@pulumi.runtime.test
def test_providers_are_set_up_for_in_place_changes(mocks: Recorder) -> Any:
    """The child providers: kubeconfig secret, SSA, mutable ConfigMaps/Secrets, cluster identity, upsert only for CRDs."""
    calico = _calico(kubeconfig=kubeconfig_text(), cluster_id=CLUSTER)

    def check(_: Any) -> None:
        for name, upsert in (("calico-k8s", "false"), ("calico-k8s-crds", "true")):
            inputs = _provider_inputs(mocks, name)
            assert _is_secret(inputs["kubeconfig"]), f"{name}: kubeconfig stored in plaintext"
            assert inputs["enableServerSideApply"] == "true"
            assert inputs["enableConfigMapMutable"] == "true" and inputs["enableSecretMutable"] == "true"
            assert inputs["clusterIdentifier"] == CLUSTER
            assert inputs["upsertExistingObjects"] == upsert
        for t, n, _ in _k8s(mocks):
            wanted = "calico-k8s-crds" if t.endswith(":CustomResourceDefinition") else "calico-k8s"
            assert f"::{wanted}::" in mocks.providers[n], (n, mocks.providers[n])

    return _settled(calico).apply(check)


def test_adopt_existing_turns_on_upsert_for_every_object(monkeypatch: pytest.MonkeyPatch) -> None:
    """adopt_existing=True sets upsertExistingObjects on the provider of the non-CRD objects too. The providers are
    keyed to the kubeconfig's cluster: a rotated token keeps the key (no provider, so no object, is replaced), a
    kubeconfig of another server changes it."""
    def provider_of(kubeconfig: str) -> dict[str, Any]:
        rec, _ = _run_guarded(monkeypatch, "3.28.0", kubeconfig=kubeconfig, adopt_existing=True)
        return _provider_inputs(rec, "calico-k8s")

    first = provider_of(kubeconfig_text(token="first-token-0123456789"))
    assert first["upsertExistingObjects"] == "true"
    rotated = provider_of(kubeconfig_text(token="rotated-token-0123456789"))
    assert rotated["clusterIdentifier"] == first["clusterIdentifier"]
    moved = provider_of(kubeconfig_text(token="first-token-0123456789", server="https://10.0.0.9:6443"))
    assert moved["clusterIdentifier"] != first["clusterIdentifier"]


@pulumi.runtime.test
def test_kubeconfig_output_is_stored_as_secret_everywhere(mocks: Recorder) -> Any:
    """A kubeconfig Output not marked secret (e.g. OKE's get_cluster_kube_config) is secret in every child."""
    kubeconfig = pulumi.Output.from_input(kubeconfig_text())
    calico = _calico(network_type="flannel-overlay", disable_flannel_addon=False, kubeconfig=kubeconfig)

    def check(_: Any) -> None:
        assert _is_secret(_provider_inputs(mocks, "calico-k8s")["kubeconfig"])
        assert _is_secret(_provider_inputs(mocks, "calico-k8s-crds")["kubeconfig"])
        flannel = next(i for t, n, i in mocks.registered if n == "calico-flannel-daemonset")
        assert _is_secret(flannel["kubeconfig"])

    return _settled(calico).apply(check)


def test_malformed_kubeconfig_fails_before_registration() -> None:
    """A well-formed kubeconfig installs; a plain-string kubeconfig that is not a kubeconfig fails in the constructor,
    without quoting it, before anything (the component itself included) is registered."""
    installed = Recorder()
    run_program(installed, lambda: _calico(kubeconfig=kubeconfig_text()))
    assert len(_k8s(installed)) == len(upstream_objects("3.28.0", "calico-policy-only.yaml"))
    rec = Recorder()
    token = "tok-ABCDEFGH-0123456789"
    with pytest.raises(ConfigurationError, match="not valid YAML") as info:
        run_program(rec, lambda: _calico(kubeconfig=f"users:\n- user: {{token: {token}\n"))
    assert token not in str(info.value)
    assert rec.registered == []


@pulumi.runtime.test
def test_await_timeout_bounds_workloads_only(mocks: Recorder) -> Any:
    """await_timeout_seconds becomes create/update custom timeouts on the awaited kinds, and on nothing else."""
    seen: dict[str, pulumi.CustomTimeouts | None] = {}

    def record(args: pulumi.ResourceTransformationArgs) -> None:
        seen[args.name] = args.opts.custom_timeouts

    pulumi.runtime.register_stack_transformation(record)
    calico = _calico(await_timeout_seconds=90)

    def check(_: Any) -> None:
        kinds = {n: t.rsplit(":", 1)[1] for t, n, _ in _k8s(mocks)}
        for n, kind in kinds.items():
            timeouts = seen[n]
            if kind in ("DaemonSet", "Deployment"):
                assert timeouts is not None and (timeouts.create, timeouts.update) == ("90s", "90s"), n
            else:
                assert timeouts is None, n
        assert kinds["calico-daemonset-kube-system-calico-node"] == "DaemonSet"

    return _settled(calico).apply(check)


@pulumi.runtime.test
def test_only_services_skip_the_await_by_default(mocks: Recorder) -> Any:
    """Awaited installs skip the provider's Service await (a fixed 10 s endpoints settle) and keep every rollout's."""
    calico = _calico()

    def check(_: Any) -> None:
        skipped = {t.rsplit(":", 1)[1]: ((inputs.get("metadata") or {}).get("annotations") or {}).get(
            "pulumi.com/skipAwait") for t, _n, inputs in _k8s(mocks)}
        assert skipped["Service"] == "true"
        assert skipped["DaemonSet"] is None and skipped["Deployment"] is None

    return _settled(calico).apply(check)


@pulumi.runtime.test
def test_every_object_is_marked_and_checked_before_anything_exists(mocks: Recorder,
                                                                   ownership_checks: list[OwnershipCall]) -> Any:
    """With a kubeconfig the cluster is checked once, for every rendered object, as this stack, then for policy the
    release no longer enforces; every object carries the stack's mark."""
    calico = _calico(kubeconfig=kubeconfig_text(), adopt_existing=True)

    def check(_: Any) -> None:
        me = f"{pulumi.get_organization()}/{pulumi.get_project()}/{pulumi.get_stack()}"
        children = _k8s(mocks)
        assert ownership_checks == [(me, True, len(children)), ("network-provider check", False, 0),
                                    ("retired-policy check for 3.28.0", False, 0)]
        marks = {((inputs.get("metadata") or {}).get("annotations") or {}).get("calico-oke.io/stack")
                 for _t, _n, inputs in children}
        assert marks == {me}

    return _settled(calico).apply(check)


def test_a_refused_check_registers_no_provider_and_no_object(monkeypatch: pytest.MonkeyPatch) -> None:
    """When another stack owns Calico, no provider and no Kubernetes object (not even a CRD) is registered."""
    from calico_component.cluster import ownership

    def refuse(*_: Any) -> None:
        raise ownership.OwnershipError("owned by organization/calico-oke/first")

    monkeypatch.setattr(ownership, "check_cluster", refuse)
    rec = Recorder()
    with pytest.raises(pulumi.RunError, match="organization/calico-oke/first"):
        run_program(rec, lambda: _settled(_calico(kubeconfig=kubeconfig_text())))
    assert not [t for t, _n, _i in rec.registered if t.startswith(("kubernetes:", "pulumi:providers"))]


@pytest.mark.parametrize("bad", [0, -5, "60", True])
def test_bad_await_timeout_is_refused(bad: Any) -> None:
    """A non-positive or non-numeric await timeout is a ConfigurationError naming the value."""
    pulumi.runtime.set_mocks(Recorder(), preview=True)
    with pytest.raises(ConfigurationError, match="await_timeout_seconds"):
        _calico(await_timeout_seconds=bad)


def _pools(*sizes: int) -> list[Pool]:
    return [Pool(f"p{i}", n, "Oracle-Linux-8.10-2024.09.30-0-OKE-1.30.1-747") for i, n in enumerate(sizes)]


@pytest.mark.parametrize("sizes, typha", [((20, 30), False), ((20, 31), True)])
def test_flannel_overlay_reads_pod_cidr_and_node_count_from_cluster(sizes: tuple[int, ...], typha: bool,
                                                                   oke: FakeOke) -> None:
    """On a known OKE cluster: CALICO_IPV4POOL_CIDR from its pods CIDR, and Typha auto above 50 managed nodes."""
    oke.cni_type, oke.pods_cidr, oke.pools = "FLANNEL_OVERLAY", "10.244.0.0/16", _pools(*sizes)
    rec = Recorder()
    pulumi.runtime.set_mocks(rec, preview=False)

    @pulumi.runtime.test
    def program() -> Any:
        calico = _calico(network_type="flannel-overlay", cluster_id=CLUSTER, kubeconfig=kubeconfig_text(),
                                        allow_existing_nodes=True)

        def check(values: list[Any]) -> None:
            typha_enabled, pod_cidr = values[:2]
            assert (typha_enabled, pod_cidr) == (typha, "10.244.0.0/16")
            names = [n for _, n, _ in _k8s(rec)]
            assert ("calico-deployment-kube-system-calico-typha" in names) is typha
            ds = next(i for _, n, i in _k8s(rec) if n == "calico-daemonset-kube-system-calico-node")
            env = {e["name"]: e.get("value") for e in ds["spec"]["template"]["spec"]["containers"][0]["env"]}
            assert env["CALICO_IPV4POOL_CIDR"] == "10.244.0.0/16"
            config = next(i for _, n, i in _k8s(rec) if n == "calico-configmap-kube-system-calico-config")
            assert config["data"]["typha_service_name"] == ("calico-typha" if typha else "none")

        urns = [c.urn for c in calico._children.values()]
        return pulumi.Output.all(calico.typha_enabled, calico.pod_cidr, *urns).apply(check)

    program()


@pulumi.runtime.test
def test_explicit_pod_cidr_beats_the_cluster(mocks: Recorder, oke: FakeOke) -> Any:
    """An explicit pod_cidr is used even when the cluster reports another pods CIDR."""
    oke.cni_type, oke.pods_cidr, oke.pools = "FLANNEL_OVERLAY", "10.244.0.0/16", _pools(2)
    calico = _calico(network_type="flannel-overlay", cluster_id=CLUSTER, kubeconfig=kubeconfig_text(),
                                    pod_cidr="10.32.0.0/16", allow_existing_nodes=True)
    return calico.pod_cidr.apply(lambda cidr: assert_equal(cidr, "10.32.0.0/16"))


def assert_equal(got: Any, want: Any) -> None:
    assert got == want


def test_typha_off_in_vcn_native_is_refused_before_registration() -> None:
    """typha='off' installs on flannel-overlay; on vcn-native it fails in the constructor, before anything (the
    component itself included) is registered."""
    installed = Recorder()
    run_program(installed, lambda: _calico(typha="off", network_type="flannel-overlay", disable_flannel_addon=False,
                                           kubeconfig=kubeconfig_text()))
    names = [n for _t, n, _i in _k8s(installed)]
    assert "calico-daemonset-kube-system-calico-node" in names
    assert "calico-deployment-kube-system-calico-typha" not in names
    rec = Recorder()
    with pytest.raises(ConfigurationError, match="only to flannel-overlay"):
        run_program(rec, lambda: _calico(typha="off"))
    assert [n for _t, n, _i in rec.registered if n != "users-cluster"] == []  # the test's own provider only


@pulumi.runtime.test
def test_workloads_wait_for_crds_other_objects_do_not(mocks: Recorder) -> Any:
    """calico-node and the Deployments depend on every CRD (started before them, calico-node can be Ready while Felix
    waits for a datastore flag that never comes, enforcing nothing); RBAC, ConfigMaps and Services carry no CRD edges."""
    depends: dict[str, list[Any]] = {}

    def record(args: pulumi.ResourceTransformationArgs) -> None:
        depends[args.name] = list(args.opts.depends_on or []) if isinstance(args.opts.depends_on, list) else []

    pulumi.runtime.register_stack_transformation(record)
    calico = _calico()

    def check(_: Any) -> None:
        crds = [c for n, c in calico._children.items() if "customresourcedefinition" in n]
        upstream = upstream_objects("3.28.0", "calico-policy-only.yaml")
        assert len(crds) == len([o for o in upstream if o["kind"] == "CustomResourceDefinition"])
        for n, kind in ((n, t.rsplit(":", 1)[1]) for t, n, _ in _k8s(mocks)):
            if kind in ("DaemonSet", "Deployment"):
                assert all(any(d is c for d in depends[n]) for c in crds), n
            else:
                assert not [d for d in depends[n] if any(d is c for c in crds)], n

    return _settled(calico).apply(check)


def _run_guarded(monkeypatch: pytest.MonkeyPatch, version: str, rec: Recorder | None = None, preview: bool = True,
                 warned: list[str] | None = None, **kw: Any) -> tuple[Recorder, list[str]]:
    """Run the component once under mocks (a preview, or an `up`); return what it registered and the warnings it
    logged (also appended to ``warned``, which a run that raises still fills)."""
    warnings: list[str] = warned if warned is not None else []
    monkeypatch.setattr(pulumi.log, "warn", lambda msg, *_a, **_k: warnings.append(str(msg)))
    rec = rec or Recorder()
    run_program(rec, lambda: _settled(_calico(calico_version=version, **kw)), preview)
    return rec, warnings


def test_retired_policy_on_the_cluster_registers_no_provider_and_no_object(monkeypatch: pytest.MonkeyPatch) -> None:
    """A clean cluster installs 3.32.0; one holding AdminNetworkPolicy objects fails preview with the guard's text and
    registers nothing."""
    from calico_component.cluster import retired

    rec, _ = _run_guarded(monkeypatch, "3.32.0", kubeconfig=kubeconfig_text())
    assert len(_k8s(rec)) == len(upstream_objects("3.32.0", "calico-policy-only.yaml"))

    def refuse(*_: Any) -> None:
        raise retired.RetiredPolicyError("Calico 3.32.0 no longer enforces AdminNetworkPolicy objects")

    monkeypatch.setattr(retired, "check_cluster", refuse)
    with pytest.raises(pulumi.RunError, match="no longer enforces AdminNetworkPolicy"):
        _run_guarded(monkeypatch, "3.32.0", kubeconfig=kubeconfig_text())


def test_policy_already_unenforced_is_a_warning_and_the_install_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """When the check returns a statement (calico-node already runs 3.32), it is logged and every object registered."""
    from calico_component.cluster import retired

    rec, quiet = _run_guarded(monkeypatch, "3.32.0", kubeconfig=kubeconfig_text())
    assert not [w for w in quiet if "AdminNetworkPolicy" in w]
    monkeypatch.setattr(retired, "check_cluster", lambda *_: "They have no effect: AdminNetworkPolicy anp-0")
    rec, warnings = _run_guarded(monkeypatch, "3.32.0", kubeconfig=kubeconfig_text())
    assert "They have no effect: AdminNetworkPolicy anp-0" in warnings
    assert len(_k8s(rec)) == len(upstream_objects("3.32.0", "calico-policy-only.yaml"))


@pytest.mark.parametrize("unreachable", [False, True], ids=["no-kubeconfig", "unreachable"])
def test_an_unchecked_cluster_is_warned_about_only_for_releases_that_retire_policy(
        monkeypatch: pytest.MonkeyPatch, unreachable: bool) -> None:
    """Without a kubeconfig, or with a cluster the check cannot reach, 3.31.5 installs quietly; 3.32.0 warns that
    AdminNetworkPolicy objects could not be looked for, and says how to check by hand."""
    from calico_component.cluster import ownership

    kw: dict[str, Any] = {}
    if unreachable:
        def unreachable_check(*_: Any) -> None:
            raise ClusterUnreachableError("cannot reach https://127.0.0.1:6443")

        monkeypatch.setattr(ownership, "check_cluster", unreachable_check)
        kw["kubeconfig"] = kubeconfig_text()
    _, before = _run_guarded(monkeypatch, "3.31.5", **kw)
    _, after = _run_guarded(monkeypatch, "3.32.0", **kw)
    assert not [w for w in before if "AdminNetworkPolicy" in w]
    unchecked = [w for w in after if "could not check the cluster for them" in w]
    assert len(unchecked) == 1 and "kubectl get adminnetworkpolicies,baselineadminnetworkpolicies" in unchecked[0]
    assert ("the cluster could not be read" if unreachable else "pass kubeconfig") in unchecked[0]


def test_flannel_removal_needs_a_named_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    """With remove_flannel=False, a flannel-overlay install through the user's provider registers Calico; asked to
    remove flannel with neither kubeconfig nor cluster_id, it is refused before anything is registered, naming both
    inputs (the current kube context is never used)."""
    kw: dict[str, Any] = dict(network_type="flannel-overlay", disable_flannel_addon=False)
    rec, _ = _run_guarded(monkeypatch, "3.32.0", remove_flannel=False, **kw)
    names = [n for _t, n, _i in rec.registered]
    assert "calico-daemonset-kube-system-calico-node" in names and "calico-flannel-daemonset" not in names
    refused = Recorder()
    with pytest.raises(ConfigurationError, match=r"never on the current kube context\. Pass kubeconfig .* or "
                                                 r"cluster_id .*remove_flannel=False"):
        _run_guarded(monkeypatch, "3.32.0", rec=refused, **kw)
    assert [t for t, _n, _i in refused.registered] == ["pulumi:providers:kubernetes"]  # the test's own provider


def test_no_cluster_named_is_refused_before_anything_is_registered() -> None:
    """With a Kubernetes provider in the options, Calico goes through it; with neither kubeconfig, cluster_id nor a
    provider, the constructor refuses, naming the three ways to name a cluster, and registers nothing: the default
    provider (the machine's current kube context) is never used."""
    rec = Recorder()
    run_program(rec, lambda: _settled(Calico("calico", _args(), users_provider())))
    assert len(_k8s(rec)) == len(upstream_objects("3.28.0", "calico-policy-only.yaml"))
    assert all("::users-cluster::" in rec.providers[n] for _t, n, _i in _k8s(rec))
    refused = Recorder()
    with pytest.raises(ConfigurationError, match=r"names no cluster: pass kubeconfig .*, cluster_id .*, or a "
                                                 r"Kubernetes provider in the resource options.*never uses the "
                                                 r"current kube context"):
        run_program(refused, lambda: Calico("calico", _args()))
    assert refused.registered == []


def test_cluster_id_alone_means_okes_kubeconfig_for_every_step(monkeypatch: pytest.MonkeyPatch, oke: FakeOke) -> None:
    """Without a kubeconfig input, the kubeconfig OKE serves for cluster_id (fetched through the component's OCI
    settings) is what the cluster checks read, what the kube-flannel-ds step and the rollout wait act on, and what the
    Calico objects' own providers use (a secret, keyed to the cluster id): never the current kube context."""
    from calico_component.cluster import ownership

    oke.kubernetes_endpoint = "10.0.0.5:6443"
    checked: list[str] = []
    monkeypatch.setattr(ownership, "check_cluster", lambda text, *_: checked.append(yaml.safe_load(text)["clusters"][0]
                                                                                   ["cluster"]["server"]))
    rec, _ = _run_guarded(monkeypatch, "3.32.0", network_type="flannel-overlay", node_os="oracle-linux-8",
                          cluster_id=pulumi.Output.from_input(CLUSTER), disable_flannel_addon=False)
    assert oke.requests[f"POST /20180222/clusters/{CLUSTER}/kubeconfig/content"] >= 1
    assert checked == ["https://10.0.0.5:6443"]
    for step in ("calico-flannel-daemonset", "calico-calico-node-rollout"):
        inputs = next(i for _t, n, i in rec.registered if n == step)
        assert _is_secret(inputs["kubeconfig"]) and "https://10.0.0.5:6443" in str(inputs["kubeconfig"]), step
    for provider in ("calico-k8s", "calico-k8s-crds"):
        inputs = _provider_inputs(rec, provider)
        assert _is_secret(inputs["kubeconfig"]) and "https://10.0.0.5:6443" in str(inputs["kubeconfig"])
        assert inputs["clusterIdentifier"] == CLUSTER
    objects = [n for t, n, _i in rec.registered if t.startswith("kubernetes:")]
    assert objects and all("::calico-k8s" in rec.providers[n] for n in objects)


def test_a_cluster_that_cannot_be_read_fails_closed_at_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """A reachable cluster installs. One the checks cannot read is a warning at preview (previews from outside a
    private endpoint stay possible) and an error at `up` that names the endpoint and registers no provider and no
    object; skip_cluster_checks lets that `up` go on, with a warning. With adopt_existing, preview fails too. A refusal
    that another attempt cannot change (HTTP 403) fails the preview itself, with its message and no warning."""
    from calico_component.cluster import ownership

    rec, _ = _run_guarded(monkeypatch, "3.31.5", preview=False, kubeconfig=kubeconfig_text())
    assert len(_k8s(rec)) == len(upstream_objects("3.31.5", "calico-policy-only.yaml"))

    def unreachable(*_: Any) -> None:
        raise ClusterUnreachableError("https://10.0.0.5:6443 did not answer within 3s to connect")

    monkeypatch.setattr(ownership, "check_cluster", unreachable)
    rec, warnings = _run_guarded(monkeypatch, "3.31.5", kubeconfig=kubeconfig_text())
    assert [w for w in warnings if "could not read the cluster" in w and "10.0.0.5" in w and "`pulumi up` will refuse"
            in w]
    assert len(_k8s(rec)) == len(upstream_objects("3.31.5", "calico-policy-only.yaml"))
    refused = Recorder()
    with pytest.raises(pulumi.RunError, match=r"could not \(https://10\.0\.0\.5:6443 did not answer.*Nothing was "
                                              r"changed.*skip_cluster_checks"):
        _run_guarded(monkeypatch, "3.31.5", rec=refused, preview=False, kubeconfig=kubeconfig_text())
    assert not [t for t, _n, _i in refused.registered if t.startswith(("kubernetes:", "pulumi:providers"))]
    rec, warnings = _run_guarded(monkeypatch, "3.31.5", preview=False, kubeconfig=kubeconfig_text(),
                                 skip_cluster_checks=True)
    assert [w for w in warnings if w.startswith("skip_cluster_checks: the cluster could not be read")]
    assert len(_k8s(rec)) == len(upstream_objects("3.31.5", "calico-policy-only.yaml"))
    with pytest.raises(pulumi.RunError, match=r"adopt_existing takes over .*10\.0\.0\.5.*Nothing was changed"):
        _run_guarded(monkeypatch, "3.31.5", kubeconfig=kubeconfig_text(), adopt_existing=True)

    def forbidden(*_: Any) -> None:
        raise ClusterAuthError("https://10.0.0.5:6443 answered HTTP 403: the kubeconfig's user may not list "
                               "daemonsets", 403)

    monkeypatch.setattr(ownership, "check_cluster", forbidden)
    refused, warned = Recorder(), list[str]()
    with pytest.raises(pulumi.RunError, match=r"HTTP 403: the kubeconfig's user may not list daemonsets"):
        _run_guarded(monkeypatch, "3.31.5", rec=refused, warned=warned, kubeconfig=kubeconfig_text())
    assert not [w for w in warned if "could not read the cluster" in w]
    assert not [t for t, _n, _i in refused.registered if t.startswith(("kubernetes:", "pulumi:providers"))]


def test_an_image_registry_ending_with_calico_is_warned_about_with_the_image_it_makes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """image_registry is what goes before calico/<image>: iad.ocir.io/t installs quietly with images under it; a value
    ending with /calico installs what it says but warns, naming the doubled image path and the value to use."""
    rec, quiet = _run_guarded(monkeypatch, "3.28.0", image_registry="iad.ocir.io/t")
    ds = next(i for t, n, i in _k8s(rec) if n == "calico-daemonset-kube-system-calico-node")
    assert ds["spec"]["template"]["spec"]["containers"][0]["image"] == "iad.ocir.io/t/calico/node:v3.28.0"
    assert not [w for w in quiet if "ends with /calico" in w]
    _, warned = _run_guarded(monkeypatch, "3.28.0", image_registry="iad.ocir.io/t/calico")
    doubled = [w for w in warned if "ends with /calico" in w]
    assert len(doubled) == 1 and "iad.ocir.io/t/calico/calico/node:v3.28.0" in doubled[0]
    assert "set image_registry to iad.ocir.io/t" in doubled[0]


def test_a_refusal_ends_a_program_with_its_message_alone() -> None:
    """A refused input raises the documented error class (callers can catch ConfigurationError) that is also a
    pulumi.RunError, which Pulumi shows as its message without a Python traceback."""
    pulumi.runtime.set_mocks(Recorder(), preview=True)
    with pytest.raises(ConfigurationError, match="network type 'weave' is not supported") as info:
        _calico(network_type="weave")
    assert isinstance(info.value, pulumi.RunError) and type(info.value).__name__ == "ConfigurationError"


def test_the_addon_step_waits_for_the_cluster_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """flannel-overlay with cluster_id: once the cluster's checks pass, the OKE add-on step is registered; when they
    refuse (another stack manages Calico there), OKE is never asked to disable Flannel: no add-on step is registered."""
    from calico_component.cluster import ownership

    kw: dict[str, Any] = dict(network_type="flannel-overlay", cluster_id=CLUSTER, kubeconfig=kubeconfig_text())
    rec, _ = _run_guarded(monkeypatch, "3.32.0", preview=False, **kw)
    assert [n for t, n, _i in rec.registered if t == OKE_ADDON_DISABLED.token] == ["calico-flannel-addon"]

    def refuse(*_: Any) -> None:
        raise ownership.OwnershipError("owned by organization/calico-oke/first")

    monkeypatch.setattr(ownership, "check_cluster", refuse)
    refused = Recorder()
    with pytest.raises(pulumi.RunError, match="organization/calico-oke/first"):
        _run_guarded(monkeypatch, "3.32.0", rec=refused, preview=False, **kw)
    assert not refused.by_type(OKE_ADDON_DISABLED.token) and not refused.by_type(DAEMONSET_ABSENT.token)
    assert [t for t, _n, _i in refused.registered] == ["calico-oke:index:Calico"]


def _oci_provider(name: str) -> pulumi.ProviderResource:
    """A provider of another package (OCI's): Pulumi never uses it for a Kubernetes object."""
    return pulumi.ProviderResource("oci", name, {})


def _k8s_provider(name: str) -> pulumi.ProviderResource:
    import pulumi_kubernetes as k8s

    return k8s.Provider(name, kubeconfig=kubeconfig_text())


def _under_parent(provider: pulumi.ProviderResource) -> pulumi.ResourceOptions:
    parent = pulumi.ComponentResource("test:index:Stack", f"{provider._name}-parent", None,
                                      pulumi.ResourceOptions(providers={provider.package: provider}))
    return pulumi.ResourceOptions(parent=parent)


PLACEMENTS: dict[str, Callable[[pulumi.ProviderResource], pulumi.ResourceOptions]] = {
    "provider": lambda p: pulumi.ResourceOptions(provider=p),
    "providers-dict": lambda p: pulumi.ResourceOptions(providers={p.package: p}),
    "providers-list": lambda p: pulumi.ResourceOptions(providers=[p]),
    "parent": _under_parent,
}


@pytest.mark.parametrize("placement", list(PLACEMENTS))
def test_a_kubernetes_provider_in_the_options_names_the_cluster(placement: str) -> None:
    """A Kubernetes provider passed as opts.provider, in opts.providers (a dict or a list) or inherited from the parent
    names the cluster: every Calico object goes through it. A provider of another package placed the same way names
    none: refused ("names no cluster") before the component is registered, never the current kube context."""
    place = PLACEMENTS[placement]
    rec = Recorder()
    run_program(rec, lambda: Calico("calico", _args(), place(_k8s_provider("users-cluster"))))
    assert len(_k8s(rec)) == len(upstream_objects("3.28.0", "calico-policy-only.yaml"))
    assert all("::users-cluster::" in rec.providers[n] for _t, n, _i in _k8s(rec))
    refused = Recorder()
    with pytest.raises(ConfigurationError, match="names no cluster"):
        run_program(refused, lambda: Calico("calico", _args(), place(_oci_provider("users-oci"))))
    assert not [t for t, _n, _i in refused.registered if t != "pulumi:providers:oci" and not t.startswith("test:")]


def test_a_kubernetes_provider_under_another_key_names_no_cluster() -> None:
    """opts.providers is looked up by package: under "kubernetes" the provider installs Calico; under another key
    Pulumi would give the Kubernetes objects its default provider (the current kube context), so it is refused."""
    rec = Recorder()
    run_program(rec, lambda: Calico("calico", _args(), pulumi.ResourceOptions(
        providers={"kubernetes": _k8s_provider("users-cluster")})))
    assert _k8s(rec) and all("::users-cluster::" in rec.providers[n] for _t, n, _i in _k8s(rec))
    refused = Recorder()
    with pytest.raises(ConfigurationError, match="names no cluster"):
        run_program(refused, lambda: Calico("calico", _args(), pulumi.ResourceOptions(
            providers={"k8s": _k8s_provider("users-cluster")})))
    assert [t for t, _n, _i in refused.registered] == ["pulumi:providers:kubernetes"]  # the test's own provider
