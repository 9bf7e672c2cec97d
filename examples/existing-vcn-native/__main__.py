"""Example: policy-only Calico on an existing VCN-native OKE cluster, found by OCID."""

from __future__ import annotations

import pulumi

from calico_component import Calico, CalicoArgs

config = pulumi.Config()
cluster_id = config.require("clusterId")

calico = Calico(
    "calico",
    CalicoArgs(
        calico_version=config.get("calicoVersion") or "3.32.0",
        # Explicit here so the example needs no lookups; leave both None to read them from the cluster.
        network_type=config.get("networkType") or "vcn-native",
        node_os=config.get("nodeOs") or "oracle-linux-8",
        # Every step acts on this cluster, through the kubeconfig OKE serves for it (its token command needs the
        # OCI CLI configured, as for kubectl).
        cluster_id=cluster_id,
        image_registry=config.get("imageRegistry"),
    ),
)

pulumi.export("manifestUrl", calico.manifest_url)
pulumi.export("manifestSha256", calico.manifest_sha256)
pulumi.export("resources", calico.resource_names)
