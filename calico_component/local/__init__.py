"""A throwaway local cluster and the pinned tools behind it: used by ``demo`` and the end-to-end suite.

Nothing in ``calico_component`` imports this package: the component, the CLI's ``render`` and the
pure layers never load it.
"""
