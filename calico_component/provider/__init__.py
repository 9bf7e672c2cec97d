"""calico-oke's Pulumi provider plugin: the package schema, and a server that constructs Calico for any language and
serves the component's steps.
"""
