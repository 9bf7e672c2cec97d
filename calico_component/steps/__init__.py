"""The component's own steps as resources of calico-oke's provider: their typed inputs and outputs, and what the provider
does for each.
"""
