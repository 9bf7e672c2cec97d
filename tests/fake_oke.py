"""A small local stand-in for the OKE add-on and work-request REST endpoints, on 127.0.0.1."""

from __future__ import annotations

import http.server
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.local_server import LocalServer

API = "/20180222"


@dataclass
class FakeOke(LocalServer):
    """Add-on state per name; a disable creates a work request that finishes as scripted."""

    addons: dict[str, str] = field(default_factory=lambda: {"Flannel": "ACTIVE"})
    work_request_outcome: str = "SUCCEEDED"  # or FAILED, or IN_PROGRESS forever
    in_progress_polls: int = 1
    requests: Counter[str] = field(default_factory=Counter)
    signed: list[bool] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._polls: Counter[str] = Counter()
        self._wr: dict[str, str] = {}
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _send(self, status: int, body: dict[str, object], headers: dict[str, str] | None = None) -> None:
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

            def do_GET(self) -> None:
                _, parts = self._route()
                if len(parts) == 4 and parts[0] == "clusters" and parts[2] == "addons":
                    state = outer.addons.get(parts[3])
                    if state is None:
                        return self._not_found()
                    return self._send(200, {"name": parts[3], "lifecycleState": state})
                if len(parts) == 2 and parts[0] == "workRequests":
                    wr = parts[1]
                    if wr not in outer._wr:
                        return self._not_found()
                    outer._polls[wr] += 1
                    status = "IN_PROGRESS"
                    if outer.work_request_outcome != "IN_PROGRESS" and outer._polls[wr] > outer.in_progress_polls:
                        status = outer.work_request_outcome
                        if status == "SUCCEEDED":
                            outer.addons.pop(outer._wr[wr], None)
                    return self._send(200, {"id": wr, "status": status, "operationType": "CLUSTER_UPDATE"})
                return self._not_found()

            def do_DELETE(self) -> None:
                _, parts = self._route()
                if len(parts) == 4 and parts[0] == "clusters" and parts[2] == "addons" and parts[3] in outer.addons:
                    assert "isRemoveExistingAddOn=true" in self.path
                    wr = f"ocid1.clustersworkrequest.oc1..wr{len(outer._wr) + 1}"
                    outer._wr[wr] = parts[3]
                    outer.addons[parts[3]] = "DELETING"
                    return self._send(202, {}, {"opc-work-request-id": wr})
                return self._not_found()

        self.endpoint = f"http://127.0.0.1:{self._bind(Handler)}"


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
