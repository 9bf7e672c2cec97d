"""Example: new enhanced flannel-overlay OKE cluster, Calico replacing flannel, node pool created after Calico."""

from __future__ import annotations

import pulumi
import pulumi_oci as oci

from calico_component import Calico, CalicoArgs

config = pulumi.Config()
compartment_id = config.require("compartmentId")
kubernetes_version = config.get("kubernetesVersion") or "v1.36.1"
node_image_id = config.require("nodeImageId")  # an Oracle Linux 8 OKE image for that Kubernetes version
calico_version = config.get("calicoVersion") or "3.32.0"

vcn = oci.core.Vcn("vcn", compartment_id=compartment_id, cidr_blocks=["10.0.0.0/16"], display_name="calico-demo",
                   dns_label="calicodemo")
igw = oci.core.InternetGateway("igw", compartment_id=compartment_id, vcn_id=vcn.id, enabled=True)
routes = oci.core.RouteTable("routes", compartment_id=compartment_id, vcn_id=vcn.id,
                             route_rules=[{"destination": "0.0.0.0/0", "network_entity_id": igw.id}])
security = oci.core.SecurityList(
    "security",
    compartment_id=compartment_id,
    vcn_id=vcn.id,
    egress_security_rules=[{"destination": "0.0.0.0/0", "protocol": "all"}],
    ingress_security_rules=[
        {"source": "10.0.0.0/16", "protocol": "all"},
        {"source": "0.0.0.0/0", "protocol": "6", "tcp_options": {"min": 6443, "max": 6443}},
    ],
)


def subnet(name: str, cidr: str) -> oci.core.Subnet:
    return oci.core.Subnet(name, compartment_id=compartment_id, vcn_id=vcn.id, cidr_block=cidr,
                           route_table_id=routes.id, security_list_ids=[security.id], dns_label=name)


api_subnet = subnet("api", "10.0.0.0/28")
node_subnet = subnet("nodes", "10.0.10.0/24")
lb_subnet = subnet("lb", "10.0.20.0/24")

cluster = oci.containerengine.Cluster(
    "cluster",
    compartment_id=compartment_id,
    kubernetes_version=kubernetes_version,
    name="calico-demo",
    vcn_id=vcn.id,
    type="ENHANCED_CLUSTER",  # add-ons (and so the Flannel add-on step) need an enhanced cluster
    cluster_pod_network_options=[{"cni_type": "FLANNEL_OVERLAY"}],
    endpoint_config={"subnet_id": api_subnet.id, "is_public_ip_enabled": True},
    options={
        "service_lb_subnet_ids": [lb_subnet.id],
        "kubernetes_network_config": {"pods_cidr": "10.244.0.0/16", "services_cidr": "10.96.0.0/16"},
    },
)
# Stored only inside secrets: the component's Kubernetes providers and flannel step keep it encrypted in state.
# The cluster is created in this program, so its OCID is an Output: say what it is explicitly.
calico = Calico(
    "calico",
    CalicoArgs(
        calico_version=calico_version,
        network_type="flannel-overlay",
        node_os="oracle-linux-8",
        cluster_id=cluster.id,  # every step acts on this cluster, through the kubeconfig OKE serves for it
        pod_cidr="10.244.0.0/16",
        skip_await=True,  # no nodes yet: Calico's Deployments cannot become ready before the node pool exists
    ),
)

ads = oci.identity.get_availability_domains_output(compartment_id=compartment_id)
node_pool = oci.containerengine.NodePool(
    "workers",
    cluster_id=cluster.id,
    compartment_id=compartment_id,
    kubernetes_version=kubernetes_version,
    name="workers",
    node_shape="VM.Standard.E4.Flex",
    node_shape_config={"ocpus": 1, "memory_in_gbs": 16},
    node_source_details={"image_id": node_image_id, "source_type": "IMAGE"},
    node_config_details={
        "size": 2,
        "placement_configs": [{"availability_domain": ads.availability_domains[0].name, "subnet_id": node_subnet.id}],
    },
    # Nodes must come up with Calico as their CNI, so they are created only after Calico is in place.
    opts=pulumi.ResourceOptions(depends_on=[calico]),
)

pulumi.export("clusterId", cluster.id)
pulumi.export("calicoObjects", calico.object_count)
pulumi.export("nodePoolId", node_pool.id)
