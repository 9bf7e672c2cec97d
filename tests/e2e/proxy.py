"""A TCP forwarder on 127.0.0.1 in front of a test API server that can turn silent: it keeps accepting connections
and never answers (an API server behind a broken route), so a kubeconfig pointing at it names the same cluster while
the cluster cannot be read."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self


@dataclass
class SilenceableProxy:
    """Forwards ``127.0.0.1:<port>`` to ``upstream`` while ``silent`` is false."""

    upstream: tuple[str, int]
    silent: bool = False
    _server: socket.socket = field(init=False)
    _held: list[socket.socket] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0), backlog=128)
        self._server.settimeout(0.2)
        self.port = int(self._server.getsockname()[1])

    def __enter__(self) -> Self:
        threading.Thread(target=self._accept, name="silenceable-proxy", daemon=True).start()
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._server.close()
        for conn in self._held:
            with contextlib.suppress(OSError):
                conn.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except (TimeoutError, OSError):
                continue
            if self.silent:
                self._held.append(conn)  # accepted, never answered
                continue
            threading.Thread(target=self._forward, args=(conn,), daemon=True).start()

    def _forward(self, conn: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            conn.close()
            return
        for a, b in ((conn, upstream), (upstream, conn)):
            threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def _pump(source: socket.socket, dest: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            dest.sendall(data)
    for s in (source, dest):
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def proxied(kubeconfig: str) -> Iterator[tuple[SilenceableProxy, str]]:
    """A proxy in front of ``kubeconfig``'s API server, and the same kubeconfig pointing at it (TLS still verifies:
    the server's certificate names 127.0.0.1, whatever the port)."""
    import yaml

    doc = yaml.safe_load(kubeconfig)
    server = doc["clusters"][0]["cluster"]["server"]
    host, _, port = server.split("://", 1)[1].rstrip("/").rpartition(":")
    with SilenceableProxy((host, int(port))) as proxy:
        doc["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{proxy.port}"
        yield proxy, yaml.safe_dump(doc)
