"""Stack program: install Calico on one OKE cluster, configured with `pulumi config` (see Pulumi.example.yaml)."""

from __future__ import annotations

import pulumi

from calico_component import Calico, CalicoError
from calico_component.component.inputs import args_from_config, outputs_of

# One config key per component input, named as in the package schema: calicoVersion, networkType,
# nodeOs, clusterId, kubeconfig (a secret), adoptExisting, podCidr, typha, skipAwait, ...
args = args_from_config(pulumi.Config())

try:
    calico = Calico("calico", args)
except CalicoError as exc:
    # The component's message is the whole story (a bad value, an unreachable mirror): show it without a traceback.
    raise pulumi.RunError(str(exc)) from None

for key, value in outputs_of(calico).items():
    pulumi.export(key, value)
