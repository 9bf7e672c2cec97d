"""The Pulumi side: the Calico ComponentResource, its inputs, its Kubernetes children and its own steps as resources of
calico-oke's provider.
"""
