"""A small local stand-in for the OKE cluster, add-on and work-request REST endpoints, on 127.0.0.1, behaving as OKE
does under load: 409 while a work request is in flight, scripted 429 (with Retry-After) and 5xx answers, slow and
failing work requests."""

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
            def _send(self, status: int, body: dict[str, object], headers: dict[str, str] | None = None) -> None:
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
                        if not outer.cluster_exists:
                            return self._not_found()
                        return self._send(200, {"id": parts[1], "name": "c", "lifecycleState": "ACTIVE"})
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
