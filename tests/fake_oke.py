"""A small local stand-in for the OKE REST API on 127.0.0.1: the cluster (its CNI, Kubernetes version, pods CIDR and
endpoints), its node pools and nodes, virtual node pools, the kubeconfig it serves, its add-ons and work requests;
behaving as OKE does under load: 409 while a work request is in flight, scripted 429 (with Retry-After) and 5xx
answers, slow and failing work requests."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.local_server import LocalServer, QuietHandler

API = "/20180222"


@dataclass
class Fault:
    """The next ``times`` requests of ``method`` whose path contains ``path_part`` are answered ``status``."""

    method: str
    status: int
    times: int
    path_part: str = ""
    retry_after: str | None = None


@dataclass
class WorkRequest:
    """One disable operation: the add-on it removes, when it started, how often it was polled."""

    addon: str
    started: float
    polls: int = 0
    applied: bool = False


@dataclass
class Pool:
    """A managed node pool: ``size`` nodes, told in ``node_config_details`` unless ``size_in_details`` is false (then
    OKE's list has no count, and GetNodePool lists the nodes); ``image`` its node image's name."""

    name: str
    size: int
    image: str = "Oracle-Linux-8.10-2025.09.16-0-OKE-1.36.0-800"
    size_in_details: bool = True
    state: str = "ACTIVE"


@dataclass
class FakeOke(LocalServer):
    """Add-on state per name; a disable creates a work request that finishes as scripted.

    A work request succeeds after ``in_progress_polls`` polls, or, with ``work_request_seconds``, once that many
    seconds passed whether polled or not (as OKE finishes it after the client went away). With
    ``hold_until_deleting_reads`` it stays IN_PROGRESS until the add-on has been served as DELETING that many times
    (``served`` counts the states answered), so a test knows a client has really waited on an in-flight disable.
    """

    addons: dict[str, str] = field(default_factory=lambda: {"Flannel": "ACTIVE"})
    work_request_outcome: str = "SUCCEEDED"  # or FAILED, or IN_PROGRESS forever
    in_progress_polls: int = 1
    work_request_seconds: float | None = None
    hold_until_deleting_reads: int | None = None
    cluster_exists: bool = True
    #: The cluster as GetCluster describes it.
    cluster_id: str = "ocid1.cluster.oc1.iad.aaaaaaaatest"
    cni_type: str = "FLANNEL_OVERLAY"
    kubernetes_version: str = "v1.36.0"
    pods_cidr: str | None = "10.244.0.0/16"
    #: The API server's endpoint (host:port) GetCluster reports, and the server the kubeconfig it serves names.
    kubernetes_endpoint: str = "10.0.0.5:6443"
    pools: list[Pool] = field(default_factory=list)
    virtual_pools: list[str] = field(default_factory=list)
    #: The kubeconfig CreateKubeconfig serves instead of an OKE one (a local control plane's, which a test can reach).
    served_kubeconfig: str | None = None
    #: Add-ons OKE offers for the cluster's Kubernetes version (ListAddonOptions).
    offered: tuple[str, ...] = ("CertManager", "CoreDNS", "Flannel", "KubeProxy", "NvidiaGpuPlugin")
    served: Counter[str] = field(default_factory=Counter)
    requests: Counter[str] = field(default_factory=Counter)
    answers: Counter[int] = field(default_factory=Counter)
    signed: list[bool] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._wr: dict[str, WorkRequest] = {}
        self._lock = threading.Lock()
        outer = self

        class Handler(QuietHandler):
            def _send(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
                outer.answers[status] += 1
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("opc-request-id", "fake")
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _not_found(self) -> None:
                self._send(404, {"code": "NotAuthorizedOrNotFound", "message": "not found"})

            def _route(self) -> tuple[str, list[str]]:
                path = self.path.split("?", 1)[0]
                outer.signed.append(self.headers.get("Authorization", "").startswith("Signature "))
                outer.requests[f"{self.command} {path}"] += 1
                return path, path.removeprefix(API).strip("/").split("/")

            def _faulted(self, path: str) -> bool:
                fault = outer._take_fault(self.command, path)
                if fault is None:
                    return False
                headers = {"retry-after": fault.retry_after} if fault.retry_after is not None else {}
                code = {429: "TooManyRequests", 409: "Conflict"}.get(fault.status, "InternalServerError")
                self._send(fault.status, {"code": code, "message": f"scripted {fault.status}"}, headers)
                return True

            def do_GET(self) -> None:  # noqa: N802 (http.server's method names)
                path, parts = self._route()
                if self._faulted(path):
                    return None
                with outer._lock:
                    outer._settle()
                    if len(parts) == 2 and parts[0] == "clusters":
                        if not outer.cluster_exists or parts[1] != outer.cluster_id:
                            return self._not_found()
                        return self._send(200, outer._cluster())
                    if len(parts) == 3 and parts[0] == "clusters" and parts[2] == "addons":
                        return self._send(200, [{"name": n, "lifecycleState": s} for n, s in outer.addons.items()])
                    if parts == ["addonOptions"]:
                        return self._send(200, [{"name": n, "lifecycleState": "ACTIVE"} for n in outer.offered])
                    if parts == ["nodePools"]:
                        return self._send(200, [outer._pool(i, p, full=False) for i, p in enumerate(outer.pools)])
                    if len(parts) == 2 and parts[0] == "nodePools":
                        index = int(parts[1].rsplit(".", 1)[-1])
                        return self._send(200, outer._pool(index, outer.pools[index], full=True))
                    if parts == ["virtualNodePools"]:
                        return self._send(200, [{"id": f"ocid1.virtualnodepool.oc1..{n}", "displayName": n,
                                                 "lifecycleState": "ACTIVE"} for n in outer.virtual_pools])
                    if len(parts) == 4 and parts[0] == "clusters" and parts[2] == "addons":
                        state = outer.addons.get(parts[3]) if outer.cluster_exists else None
                        if state is None:
                            return self._not_found()
                        outer.served[state] += 1
                        return self._send(200, {"name": parts[3], "lifecycleState": state})
                    if len(parts) == 2 and parts[0] == "workRequests" and parts[1] in outer._wr:
                        outer._wr[parts[1]].polls += 1
                        outer._settle()
                        return self._send(200, {"id": parts[1], "status": outer._status(parts[1]),
                                                "operationType": "CLUSTER_UPDATE"})
                return self._not_found()

            def do_POST(self) -> None:  # noqa: N802 (http.server's method names)
                path, parts = self._route()
                if self._faulted(path):
                    return None
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                if len(parts) == 4 and parts[0] == "clusters" and parts[2:] == ["kubeconfig", "content"] \
                        and parts[1] == outer.cluster_id and outer.cluster_exists:
                    data = outer.kubeconfig().encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Content-Length", str(len(data)))
                    self.send_header("opc-request-id", "fake")
                    self.end_headers()
                    self.wfile.write(data)
                    return None
                return self._not_found()

            def do_DELETE(self) -> None:  # noqa: N802 (http.server's method names)
                path, parts = self._route()
                if self._faulted(path):
                    return None
                with outer._lock:
                    outer._settle()
                    if len(parts) == 4 and parts[0] == "clusters" and parts[2] == "addons" and parts[3] in outer.addons:
                        assert "isRemoveExistingAddOn=true" in self.path
                        if outer.addons[parts[3]] in ("DELETING", "UPDATING", "CREATING"):
                            return self._send(409, {"code": "Conflict",
                                                    "message": "a work request is in progress on this add-on"})
                        wr = f"ocid1.clustersworkrequest.oc1..wr{len(outer._wr) + 1}"
                        outer._wr[wr] = WorkRequest(parts[3], time.monotonic())
                        outer.addons[parts[3]] = "DELETING"
                        return self._send(202, {}, {"opc-work-request-id": wr})
                return self._not_found()

        self.endpoint = f"http://127.0.0.1:{self._bind(Handler)}"

    def _cluster(self) -> dict[str, object]:
        options = {"kubernetesNetworkConfig": {"podsCidr": self.pods_cidr}} if self.pods_cidr else {}
        return {"id": self.cluster_id, "name": "c", "lifecycleState": "ACTIVE",
                "compartmentId": "ocid1.compartment.oc1..aaaaaaaatest", "kubernetesVersion": self.kubernetes_version,
                "clusterPodNetworkOptions": [{"cniType": self.cni_type}], "options": options,
                "endpoints": {"kubernetes": self.kubernetes_endpoint, "privateEndpoint": self.kubernetes_endpoint}}

    def _pool(self, index: int, pool: Pool, *, full: bool) -> dict[str, object]:
        summary: dict[str, object] = {
            "id": f"ocid1.nodepool.oc1..pool.{index}", "name": pool.name, "clusterId": self.cluster_id,
            "compartmentId": "ocid1.compartment.oc1..aaaaaaaatest", "lifecycleState": pool.state,
            "nodeSource": {"sourceType": "IMAGE", "sourceName": pool.image, "imageId": "ocid1.image.oc1..img"},
            "nodeConfigDetails": {"size": pool.size} if pool.size_in_details else None,
        }
        if full:
            summary["nodes"] = [{"id": f"ocid1.instance.oc1..{pool.name}-{n}", "name": f"{pool.name}-{n}",
                                 "lifecycleState": "ACTIVE"} for n in range(pool.size)]
        return summary

    def kubeconfig(self) -> str:
        """The kubeconfig OKE serves for the cluster: its endpoint, and a token command naming the cluster (or
        ``served_kubeconfig``)."""
        if self.served_kubeconfig is not None:
            return self.served_kubeconfig
        return (
            "apiVersion: v1\nkind: Config\ncurrent-context: ctx\n"
            f"clusters:\n- name: c\n  cluster:\n    server: https://{self.kubernetes_endpoint}\n"
            "    certificate-authority-data: Y2E=\n"
            "contexts:\n- name: ctx\n  context:\n    cluster: c\n    user: u\n"
            "users:\n- name: u\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n"
            "      command: oci\n      args: [ce, cluster, generate-token, --cluster-id, "
            f"{self.cluster_id}, --region, us-ashburn-1]\n      env: []\n")

    def fail(self, method: str, status: int, times: int, path_part: str = "", retry_after: str | None = None) -> None:
        """Script ``times`` answers of ``status`` to the next matching requests."""
        self.faults.append(Fault(method, status, times, path_part, retry_after))

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.times > 0 and fault.method == method and fault.path_part in path:
                    fault.times -= 1
                    return fault
        return None

    def _status(self, wr: str) -> str:
        request = self._wr[wr]
        if self.work_request_outcome == "IN_PROGRESS":
            return "IN_PROGRESS"
        if self.hold_until_deleting_reads is not None:
            done = not self._held()
        elif self.work_request_seconds is not None:
            done = time.monotonic() - request.started >= self.work_request_seconds
        else:
            done = request.polls > self.in_progress_polls
        return self.work_request_outcome if done else "IN_PROGRESS"

    def _held(self) -> bool:
        hold = self.hold_until_deleting_reads
        return hold is not None and self.served["DELETING"] < hold

    def _settle(self) -> None:
        """A work request that has succeeded has removed its add-on (once: the add-on may be enabled again later)."""
        for wr, request in self._wr.items():
            if not request.applied and self._status(wr) == "SUCCEEDED":
                request.applied = True
                self.addons.pop(request.addon, None)


def write_oci_config(directory: Path) -> Path:
    """An OCI SDK config with a fresh API signing key, so requests are really signed."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_path = directory / "oci_api_key.pem"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    config = directory / "config"
    config.write_text(
        "[DEFAULT]\n"
        "user=ocid1.user.oc1..aaaaaaaatest\n"
        "fingerprint=11:22:33:44:55:66:77:88:99:00:aa:bb:cc:dd:ee:ff\n"
        "tenancy=ocid1.tenancy.oc1..aaaaaaaatest\n"
        "region=us-ashburn-1\n"
        f"key_file={key_path}\n"
    )
    return config
