"""Pulumi plugin entry point: serves calico-oke:index:Calico to programs in any language."""

from calico_component.provider.server import main

if __name__ == "__main__":
    main()
