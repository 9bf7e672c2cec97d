// Calico network policy on an existing OKE cluster (VCN-native unless networkType says otherwise), composed into a Go
// program. `pulumi package add ../../plugin` generates the SDK this imports (see README.md).
package main

import (
	"example.com/pulumi-calico-oke/sdk/go/calicooke"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/config"
)

// orDefault is the config value of key, or fallback when it is not set.
func orDefault(cfg *config.Config, key, fallback string) string {
	if value := cfg.Get(key); value != "" {
		return value
	}
	return fallback
}

func main() {
	pulumi.Run(func(ctx *pulumi.Context) error {
		cfg := config.New(ctx, "")
		args := &calicooke.CalicoArgs{
			CalicoVersion: orDefault(cfg, "calicoVersion", "3.32.0"),
			NetworkType:   pulumi.StringRef(orDefault(cfg, "networkType", "vcn-native")),
			NodeOs:        pulumi.StringRef(orDefault(cfg, "nodeOs", "oracle-linux-8")),
			Kubeconfig:    cfg.RequireSecret("kubeconfig"),
		}
		// With a flannel-overlay cluster, its OCID: the OKE Flannel add-on is disabled through OCI.
		if clusterID := cfg.Get("clusterId"); clusterID != "" {
			args.ClusterId = pulumi.String(clusterID)
		}
		calico, err := calicooke.NewCalico(ctx, "calico", args)
		if err != nil {
			return err
		}
		ctx.Export("calicoVersion", calico.CalicoVersion)
		ctx.Export("objectCount", calico.ObjectCount)
		ctx.Export("typhaEnabled", calico.TyphaEnabled)
		return nil
	})
}
