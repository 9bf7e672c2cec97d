"""vcn-native on a real engine and API server: preview, up, no-op, upgrade, drift and destroy, in order."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from kubernetes import client

from calico_component import Calico, CalicoArgs
from calico_component.local.controlplane import ControlPlane
from tests.conftest import upstream_bytes, upstream_image, upstream_objects
from tests.e2e.cluster import calico_node, env_of, exists
from tests.e2e.conftest import Run, StackFactory, mirror

CRD = "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition"
DOC_ENV = {"FELIX_INTERFACEPREFIX": "oci", "NO_DEFAULT_POOLS": "true", "FELIX_CHAININSERTMODE": "Append",
           "FELIX_IPTABLESMANGLEALLOWACTION": "Return", "FELIX_IPTABLESBACKEND": "NFT"}


def program(kubeconfig: str, version: str) -> Any:
    def run() -> None:
        Calico("calico", CalicoArgs(calico_version=version, network_type="vcn-native", node_os="oracle-linux-8",
                                    kubeconfig=kubeconfig, manifest_mirror=mirror(), skip_await=True))
    return run


def test_lifecycle(control_plane: ControlPlane, k8s: Any, make_stack: StackFactory) -> None:
    """preview -> up -> no-op preview -> upgrade -> drift detection and repair -> destroy, on a live API server."""
    upstream = upstream_objects("3.31.5", "calico-policy-only.yaml")
    stack = make_stack("calico-e2e-vcn", program(control_plane.kubeconfig, "3.31.5"))

    # preview: one create per manifest object, plus the component and its provider.
    run = Run()
    stack.preview(on_event=run.on_event)
    creates = run.of("create")
    k8s_creates = [(t, n) for t, n in creates if t.startswith("kubernetes:") and not t.startswith("pulumi:")]
    assert len(k8s_creates) == len(upstream) == 42
    assert ("calico-oke:index:Calico", "calico") in creates
    assert ("pulumi:providers:kubernetes", "calico-k8s") in creates
    assert not exists(lambda: calico_node(k8s)), "preview must not change the cluster"

    # up: every object exists, calico-node as the document says, read back through the API.
    result = stack.up(on_output=lambda _: None)
    assert result.summary.result == "succeeded"
    ds = calico_node(k8s)
    pod = ds.spec.template.spec
    env = env_of(ds)
    for name, value in DOC_ENV.items():
        assert env[name] == value
    assert "FELIX_TYPHAK8SSERVICENAME" not in env
    assert not pod.init_containers and not pod.containers[0].env_from
    assert {v.name for v in pod.volumes} == {"lib-modules", "var-run-calico", "var-lib-calico", "xtables-lock",
                                             "sys-fs", "bpffs", "nodeproc", "policysync"}
    assert not {"cni-net-dir", "cni-log-dir"} & {m.name for m in pod.containers[0].volume_mounts}
    crds = client.ApiextensionsV1Api(k8s).list_custom_resource_definition().items
    assert len(crds) == sum(1 for o in upstream if o["kind"] == "CustomResourceDefinition")
    assert exists(lambda: client.AppsV1Api(k8s).read_namespaced_deployment("calico-typha", "kube-system"))
    assert exists(lambda: client.RbacAuthorizationV1Api(k8s).read_cluster_role("calico-node"))

    # a second preview is a no-op: no perpetual diff.
    run = Run()
    stack.preview(on_event=run.on_event)
    assert run.changed() == [], f"perpetual diff: {run.changed()}"

    # upgrade: updates (and upstream's creates/deletes), never a CRD replacement.
    stack = make_stack("calico-e2e-vcn", program(control_plane.kubeconfig, "3.32.0"))
    run = Run()
    stack.preview(on_event=run.on_event)
    ops = run.changed()
    assert ("update", "kubernetes:apps/v1:DaemonSet", "calico-daemonset-kube-system-calico-node") in ops
    assert not [x for x in ops if x[0] in ("replace", "create-replacement", "delete-replaced")], ops
    new_upstream = {(o["kind"], o["metadata"]["name"]) for o in upstream_objects("3.32.0", "calico-policy-only.yaml")}
    old_upstream = {(o["kind"], o["metadata"]["name"]) for o in upstream}
    assert len([x for x in ops if x[0] == "create"]) == len(new_upstream - old_upstream)
    assert len([x for x in ops if x[0] == "delete"]) == len(old_upstream - new_upstream)
    result = stack.up(on_output=lambda _: None)
    assert result.summary.result == "succeeded"
    ds = calico_node(k8s)
    assert ds.spec.template.spec.containers[0].image == upstream_image("3.32.0")
    typha: Any = client.AppsV1Api(k8s).read_namespaced_deployment("calico-typha", "kube-system")
    assert typha.spec.template.spec.containers[0].image == upstream_image("3.32.0", "calico-typha")

    # drift: drop an env var and change the image behind Pulumi's back.
    index = [e.name for e in ds.spec.template.spec.containers[0].env].index("FELIX_CHAININSERTMODE")
    client.AppsV1Api(k8s).patch_namespaced_daemon_set(
        "calico-node", "kube-system",
        [{"op": "remove", "path": f"/spec/template/spec/containers/0/env/{index}"},
         {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "example.invalid/drift:1"}],
        field_manager="drift-test",
    )
    run = Run()
    stack.preview(on_event=run.on_event, refresh=True)
    assert ("update", "kubernetes:apps/v1:DaemonSet", "calico-daemonset-kube-system-calico-node") in run.changed()
    result = stack.up(on_output=lambda _: None, refresh=True)
    assert result.summary.result == "succeeded"
    ds = calico_node(k8s)
    assert ds.spec.template.spec.containers[0].image == upstream_image("3.32.0")
    assert env_of(ds)["FELIX_CHAININSERTMODE"] == "Append"

    # destroy: the component's objects go; CRDs stay (retained on purpose); the cluster's own objects stay.
    own: Any = client.CoreV1Api(k8s).create_namespaced_config_map(
        "kube-system", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cluster-own")))
    assert own.metadata.name == "cluster-own"
    destroyed = stack.destroy(on_output=lambda _: None)
    assert destroyed.summary.result == "succeeded"
    assert not exists(lambda: calico_node(k8s))
    assert not exists(lambda: client.RbacAuthorizationV1Api(k8s).read_cluster_role("calico-node"))
    assert not exists(lambda: client.CoreV1Api(k8s).read_namespaced_service_account("calico-node", "kube-system"))
    assert exists(lambda: client.CoreV1Api(k8s).read_namespaced_config_map("cluster-own", "kube-system"))
    assert exists(lambda: client.CoreV1Api(k8s).read_namespace("kube-system"))
    assert exists(lambda: client.ApiextensionsV1Api(k8s).read_custom_resource_definition(
        "ippools.crd.projectcalico.org"))


@pytest.mark.parametrize("version", ["3.31.5"])
def test_object_count_output(control_plane: ControlPlane, make_stack: StackFactory, version: str) -> None:
    """Stack outputs expose the component's provenance: version, URL, pinned digest and object count."""
    import pulumi

    def run() -> None:
        c = Calico("calico", CalicoArgs(calico_version=version, network_type="vcn-native", node_os="oracle-linux-7",
                                        kubeconfig=control_plane.kubeconfig, manifest_mirror=mirror(),
                                        skip_await=True))
        pulumi.export("count", c.object_count)
        pulumi.export("sha", c.manifest_sha256)
        pulumi.export("url", c.manifest_url)

    stack = make_stack("calico-e2e-outputs", run)
    outputs = stack.up(on_output=lambda _: None).outputs
    assert outputs["count"].value == len(upstream_objects(version, "calico-policy-only.yaml")) == 42
    assert outputs["sha"].value == hashlib.sha256(upstream_bytes(version, "calico-policy-only.yaml")).hexdigest()
    assert outputs["url"].value.endswith("/v3.31.5/manifests/calico-policy-only.yaml")
