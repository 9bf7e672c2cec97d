"""Pulumi plugin entry point: constructs calico-oke:index:Calico for programs in any language and serves the
component's own steps (calico-oke:index:OkeAddonDisabled, DaemonSetAbsent, RolloutAwaited, PolicyCheck)."""

from calico_component.provider.server import main

if __name__ == "__main__":
    main()
