"""Start/stop plumbing shared by the test servers: a threaded HTTP server on 127.0.0.1 in a daemon thread."""

from __future__ import annotations

import http.server
import threading
from types import TracebackType
from typing import Self


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """A request handler that keeps the test output clean (no access log line per request)."""

    def log_message(self, format: str, *args: object) -> None:
        pass


class LocalServer:
    """Serves ``handler`` on an ephemeral 127.0.0.1 port while used as a context manager."""

    _httpd: http.server.ThreadingHTTPServer
    _thread: threading.Thread

    def _bind(self, handler: type[http.server.BaseHTTPRequestHandler]) -> int:
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        return int(self._httpd.server_address[1])

    def _cleanup(self) -> None:
        """Hook for subclasses: release extra resources after the server stopped."""

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
        self._cleanup()
