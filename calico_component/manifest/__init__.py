"""The manifest pipeline: Oracle's release table, fetching and verifying upstream manifests, parsing, and Oracle's edits
as pure functions (no Pulumi, no cluster).
"""
