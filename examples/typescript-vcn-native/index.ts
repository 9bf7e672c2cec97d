// Calico network policy on an existing OKE cluster (VCN-native unless networkType says otherwise), composed into a
// TypeScript program. `pulumi package add ../../plugin` generates the `@pulumi/calico-oke` SDK this imports (see
// README.md).
import * as pulumi from "@pulumi/pulumi";
import * as calicoOke from "@pulumi/calico-oke";

const config = new pulumi.Config();

const calico = new calicoOke.Calico("calico", {
    calicoVersion: config.get("calicoVersion") ?? "3.32.0",
    networkType: config.get("networkType") ?? "vcn-native",
    nodeOs: config.get("nodeOs") ?? "oracle-linux-8",
    // With a flannel-overlay cluster, its OCID: the OKE Flannel add-on is disabled through OCI.
    clusterId: config.get("clusterId"),
    kubeconfig: config.requireSecret("kubeconfig"),
});

export const calicoVersion = calico.calicoVersion;
export const objectCount = calico.objectCount;
export const typhaEnabled = calico.typhaEnabled;
