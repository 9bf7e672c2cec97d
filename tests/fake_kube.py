"""A minimal Kubernetes API stand-in on 127.0.0.1: scripted answers per path, every request recorded."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.local_server import LocalServer, QuietHandler


@dataclass
class FakeKube(LocalServer):
    """Answers ``answers[(method, path)]`` (status, JSON body); 404 for anything else. ``deleted`` paths answer 404.
    The next ``throttled`` requests get 429 with ``Retry-After: 0`` instead, as API Priority and Fairness answers."""

    answers: dict[tuple[str, str], tuple[int, dict[str, Any]]] = field(default_factory=dict)
    seen: list[tuple[str, str, str]] = field(default_factory=list)  # method, path, Authorization
    throttled: int = 0

    def __post_init__(self) -> None:
        outer = self

        class Handler(QuietHandler):
            def _answer(self) -> None:
                path = self.path.split("?", 1)[0]
                outer.seen.append((self.command, path, self.headers.get("Authorization", "")))
                status, body = outer.answers.get((self.command, path), (404, {"kind": "Status", "code": 404}))
                headers = {}
                if outer.throttled > 0:
                    outer.throttled -= 1
                    status, body, headers = 429, {"kind": "Status", "code": 429}, {"Retry-After": "0"}
                if self.command == "DELETE" and status < 300:
                    outer.answers.pop(("GET", path), None)
                data = json.dumps(body).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 (http.server's method names)
                self._answer()

            def do_DELETE(self) -> None:  # noqa: N802 (http.server's method names)
                self._answer()

        self.server = f"http://127.0.0.1:{self._bind(Handler)}"


def kubeconfig_for(server: str, user: dict[str, Any] | None = None) -> str:
    """Kubeconfig contents for ``server`` with a bearer token (or the given ``user`` entry)."""
    doc = {
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "users": [{"name": "u", "user": user if user is not None else {"token": "fake-token-0123456789"}}],
    }
    return json.dumps(doc)


@contextmanager
def silent_server() -> Iterator[tuple[str, list[int]]]:
    """A server on 127.0.0.1 that accepts connections and never answers: its URL and a live count of connections."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    accepted: list[socket.socket] = []
    count = [0]
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            accepted.append(conn)
            count[0] += 1

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", count
    finally:
        stop.set()
        thread.join(timeout=2)
        for conn in accepted:
            conn.close()
        listener.close()


def closed_port() -> str:
    """The URL of a 127.0.0.1 port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"
