"""The component's own steps as resources of calico-oke's provider: their typed inputs and outputs (``types``), and
what the provider does for each (``addon``, ``daemonset``, ``rollout``, ``policy``: a ``handler.Step`` per type)."""
