"""What calico-oke does to a live cluster itself, without Pulumi: its Kubernetes and OCI access, flannel removal, the
ownership and retired-policy checks, the rollout wait.
"""
