"""A TCP forwarder from inside a node's network namespace to the API server on the machine's loopback.

The node's namespace has no link to the machine's own: it only has its dummy uplink and its pods'
veths. The forwarder listens on the node's loopback; each connection it accepts is dialled out by
a thread that entered the machine's network namespace (``setns`` on a namespace file descriptor the
parent passed down), so nothing is added to the machine's namespace, not even an interface.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import socket
import threading
from dataclasses import dataclass, field

CLONE_NEWNET = 0x40000000


def enter_netns(fd: int) -> None:
    """Move the calling thread (only it) into the network namespace ``fd`` refers to."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns(network namespace fd {fd}): {os.strerror(err)}")


@dataclass
class _Dial:
    address: tuple[str, int]
    result: queue.Queue[socket.socket | OSError] = field(default_factory=lambda: queue.Queue(maxsize=1))


@dataclass
class ApiForwarder:
    """Accept on ``listen`` (in this process's namespace), connect to ``upstream`` in namespace ``upstream_netns``."""

    listen: tuple[str, int]
    upstream: tuple[str, int]
    upstream_netns: int
    _dials: queue.Queue[_Dial | None] = field(default_factory=queue.Queue)
    _server: socket.socket | None = None

    def start(self) -> None:
        """Bind now (so callers can connect as soon as this returns) and serve in daemon threads."""
        server = socket.create_server(self.listen, backlog=128)
        self._server = server
        threading.Thread(target=self._dialer, name="apiproxy-dialer", daemon=True).start()
        threading.Thread(target=self._accept, name="apiproxy-accept", daemon=True).start()

    def stop(self) -> None:
        self._dials.put(None)
        if self._server is not None:
            with contextlib.suppress(OSError):
                self._server.close()

    def _dialer(self) -> None:
        """The one thread in the upstream namespace: every outgoing socket is created here."""
        enter_netns(self.upstream_netns)
        while (dial := self._dials.get()) is not None:
            try:
                dial.result.put(socket.create_connection(dial.address, timeout=10))
            except OSError as exc:
                dial.result.put(exc)

    def _accept(self) -> None:
        assert self._server is not None
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        dial = _Dial(self.upstream)
        self._dials.put(dial)
        upstream = dial.result.get()
        if isinstance(upstream, OSError):
            client.close()
            return
        upstream.settimeout(None)
        threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()
        _pump(client, upstream)


def _pump(src: socket.socket, dst: socket.socket) -> None:
    """Copy ``src`` to ``dst`` until either side closes, then close both."""
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
