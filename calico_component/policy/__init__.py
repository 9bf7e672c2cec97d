"""The policy check: its plan (pure), its run against a cluster, and its report."""
