// Calico network policy on an existing VCN-native OKE cluster, composed into a Go program.
// `pulumi package add ../../plugin` generates the SDK this imports (see README.md).
package main

import (
	"example.com/pulumi-calico-oke/sdk/go/calicooke"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/config"
)

func main() {
	pulumi.Run(func(ctx *pulumi.Context) error {
		cfg := config.New(ctx, "")
		version := cfg.Get("calicoVersion")
		if version == "" {
			version = "3.32.0"
		}
		calico, err := calicooke.NewCalico(ctx, "calico", &calicooke.CalicoArgs{
			CalicoVersion: version,
			NetworkType:   pulumi.StringRef("vcn-native"),
			NodeOs:        pulumi.StringRef("oracle-linux-8"),
			Kubeconfig:    cfg.RequireSecret("kubeconfig"),
		})
		if err != nil {
			return err
		}
		ctx.Export("calicoVersion", calico.CalicoVersion)
		ctx.Export("objectCount", calico.ObjectCount)
		ctx.Export("typhaEnabled", calico.TyphaEnabled)
		return nil
	})
}
