"""Example: what Calico is installed for: default-deny in a namespace, then allow frontend -> backend by label.

Config (all optional): ``calicoVersion``, ``networkType``, ``nodeOs``, ``clusterId`` and ``kubeconfig`` (a
secret) as for the stack program; ``installCalico`` (default true): false deploys only the demo, onto a
cluster whose Calico another stack manages; ``policies`` (default true): false removes the two policies,
and traffic flows again.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from calico_component import Calico, CalicoArgs

config = pulumi.Config()
kubeconfig = config.get_secret("kubeconfig")
# Everything goes to the cluster Calico is installed on: the kubeconfig given, else the ambient one (~/.kube/config).
cluster = pulumi.ResourceOptions(provider=k8s.Provider("cluster", kubeconfig=kubeconfig)) if kubeconfig else None
after_calico = pulumi.ResourceOptions.merge(cluster, pulumi.ResourceOptions())
if config.get_bool("installCalico") is not False:
    calico = Calico(
        "calico",
        CalicoArgs(
            calico_version=config.get("calicoVersion") or "3.32.0",
            network_type=config.get("networkType") or "vcn-native",
            node_os=config.get("nodeOs") or "oracle-linux-8",
            cluster_id=config.get("clusterId"),
            kubeconfig=kubeconfig,
        ),
    )
    after_calico = pulumi.ResourceOptions.merge(after_calico, pulumi.ResourceOptions(depends_on=[calico]))

ns = k8s.core.v1.Namespace("demo", metadata={"name": "policy-demo"}, opts=after_calico)
namespace = ns.metadata.apply(lambda m: m.name)

backend_labels = {"app": "backend"}
deployment_spec: Any = {
    "replicas": 1,
    "selector": {"matchLabels": backend_labels},
    "template": {
        "metadata": {"labels": backend_labels},
        "spec": {"containers": [{"name": "web", "image": "nginxinc/nginx-unprivileged:1.27",
                                 "ports": [{"containerPort": 8080}]}]},
    },
}
k8s.apps.v1.Deployment("backend", metadata={"namespace": namespace, "name": "backend"}, spec=deployment_spec,
                       opts=after_calico)
service_spec: Any = {"selector": backend_labels, "ports": [{"port": 80, "targetPort": 8080}]}
k8s.core.v1.Service("backend", metadata={"namespace": namespace, "name": "backend"}, spec=service_spec,
                    opts=after_calico)

if config.get_bool("policies") is not False:
    # 1. Nothing may talk to any pod in the namespace...
    deny_all: Any = {"podSelector": {}, "policyTypes": ["Ingress"]}
    k8s.networking.v1.NetworkPolicy(
        "default-deny",
        metadata={"namespace": namespace, "name": "default-deny-ingress"},
        spec=deny_all,
        opts=after_calico,
    )
    # 2. ...except pods labelled role=frontend, to the backend, on its port.
    allow_frontend: Any = {
        "podSelector": {"matchLabels": backend_labels},
        "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "frontend"}}}],
                     "ports": [{"protocol": "TCP", "port": 8080}]}],
    }
    k8s.networking.v1.NetworkPolicy(
        "allow-frontend",
        metadata={"namespace": namespace, "name": "allow-frontend-to-backend"},
        spec=allow_frontend,
        opts=after_calico,
    )

pulumi.export("namespace", namespace)
