"""A real HTTPS server on 127.0.0.1 serving a manifest mirror, with scriptable misbehaviour for tests."""

from __future__ import annotations

import ssl
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import trustme

from tests.local_server import LocalServer, QuietHandler


@dataclass
class Behaviour:
    """How the server answers one path: fail N times with a status, delay, corrupt the body, redirect."""

    fail_times: int = 0
    fail_status: int = 503
    status: int | None = None
    delay: float = 0.0
    corrupt: bool = False
    redirect: str | None = None


@dataclass
class ManifestServer(LocalServer):
    root: Path
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    requests: Counter[str] = field(default_factory=Counter)
    authorization: dict[str, list[str | None]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._ca = trustme.CA()
        cert = self._ca.issue_cert("127.0.0.1", "localhost")
        self._tmp = tempfile.TemporaryDirectory(prefix="calico-oke-https-")
        self.ca_file = Path(self._tmp.name) / "ca.pem"
        self._ca.cert_pem.write_to_path(str(self.ca_file))
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(server_ctx)
        self.client_context = ssl.create_default_context(cafile=str(self.ca_file))
        outer = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's method names)
                path = self.path.split("?", 1)[0]
                outer.requests[path] += 1
                outer.authorization.setdefault(path, []).append(self.headers.get("Authorization"))
                b = outer.behaviours.get(path, Behaviour())
                if b.delay:
                    time.sleep(b.delay)
                if b.fail_times > 0:
                    b.fail_times -= 1
                    self.send_error(b.fail_status)
                    return
                if b.status is not None:
                    self.send_error(b.status)
                    return
                if b.redirect is not None:
                    self.send_response(302)
                    self.send_header("Location", b.redirect)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                target = (outer.root / path.lstrip("/")).resolve()
                if not target.is_file() or outer.root.resolve() not in target.parents:
                    self.send_error(404)
                    return
                body = target.read_bytes()
                if b.corrupt:
                    body = body.replace(b"calico", b"calicX", 1)
                self.send_response(200)
                self.send_header("Content-Type", "application/yaml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                    pass

        port = self._bind(Handler)
        self._httpd.socket = server_ctx.wrap_socket(self._httpd.socket, server_side=True)
        self.base_url = f"https://127.0.0.1:{port}"

    def url(self, version: str, file: str) -> str:
        return f"{self.base_url}/v{version}/{file}"

    def path(self, version: str, file: str) -> str:
        return f"/v{version}/{file}"

    def _cleanup(self) -> None:
        self._tmp.cleanup()
