"""Stack program: install Calico on one OKE cluster, configured with `pulumi config` (see Pulumi.example.yaml)."""

from __future__ import annotations

import pulumi

from calico_component import Calico, CalicoArgs

config = pulumi.Config()
cluster_id = config.get("clusterId")
kubeconfig: pulumi.Input[str] | None = config.get_secret("kubeconfig")
if kubeconfig is None and cluster_id:
    import pulumi_oci as oci

    kubeconfig = oci.containerengine.get_cluster_kube_config_output(cluster_id=cluster_id).content

calico = Calico(
    "calico",
    CalicoArgs(
        calico_version=config.require("calicoVersion"),
        network_type=config.get("networkType"),
        node_os=config.get("nodeOs"),
        cluster_id=cluster_id,
        kubeconfig=kubeconfig,
        allow_existing_nodes=config.get_bool("allowExistingNodes") or False,
        adopt_existing=config.get_bool("adoptExisting") or False,
        disable_flannel_addon=config.get_bool("disableFlannelAddon") is not False,
        manifest_mirror=config.get("manifestMirror"),
        manifest_sha256=config.get("manifestSha256"),
        image_registry=config.get("imageRegistry"),
        pod_cidr=config.get("podCidr"),
        typha=config.get("typha") or "auto",
        typha_replicas=config.get_int("typhaReplicas"),
        skip_await=config.get_bool("skipAwait") or False,
        await_timeout_seconds=config.get_float("awaitTimeoutSeconds"),
        strict_version_check=config.get_bool("strictVersionCheck") or False,
    ),
)

pulumi.export("calicoVersion", calico.calico_version)
pulumi.export("networkType", calico.network_type)
pulumi.export("manifestUrl", calico.manifest_url)
pulumi.export("manifestSha256", calico.manifest_sha256)
pulumi.export("objectCount", calico.object_count)
pulumi.export("typhaEnabled", calico.typha_enabled)
