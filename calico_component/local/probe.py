"""Traffic inside a local node's pods: the stand-in container that listens on a pod's ports, and TCP probes.

Run as a script inside a pod's network namespace (it imports nothing from calico_component, so it
starts in tens of milliseconds):

    probe.py serve PORT...                        answer every TCP connection on PORT... until killed
    probe.py connect IP PORT [--timeout S]        one attempt; prints ok/timeout/refused/unreachable/error; exit 0
                                                  only for ok
    probe.py watch IP PORT --out FILE [--interval S] [--timeout S] [--limit S]
                                                  an attempt every interval, one line per attempt in FILE:
                                                  "<unix time> <ok|timeout|refused|unreachable|error>", until --limit

A connection NetworkPolicy denies is dropped, so its attempt times out; a port nobody listens on is
refused (a reset), which tells "denied" from "nothing there".
"""

from __future__ import annotations

import argparse
import errno
import socket
import sys
import threading
import time


def attempt(ip: str, port: int, timeout: float) -> str:
    """One TCP connect: ``ok``, ``timeout`` (dropped), ``refused`` (reset), ``unreachable`` (an ICMP host unreachable:
    rejected, not dropped) or ``error``."""
    try:
        with socket.create_connection((ip, port), timeout=timeout):
            return "ok"
    except TimeoutError:
        return "timeout"
    except ConnectionRefusedError:
        return "refused"
    except OSError as exc:
        if exc.errno == errno.ETIMEDOUT:
            return "timeout"
        return "unreachable" if exc.errno == errno.EHOSTUNREACH else "error"


def _answer(server: socket.socket, body: bytes) -> None:
    while True:
        conn, _ = server.accept()
        with conn:
            try:
                conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            except OSError:
                pass


def serve(ports: list[int], name: str) -> int:
    servers = [socket.create_server(("0.0.0.0", port), backlog=256, reuse_port=False) for port in ports]
    for server in servers:
        threading.Thread(target=_answer, args=(server, f"{name}\n".encode()), daemon=True).start()
    print(f"listening on {', '.join(map(str, ports))}", flush=True)
    threading.Event().wait()
    return 0


def watch(ip: str, port: int, out: str, interval: float, timeout: float, limit: float) -> int:
    deadline = time.monotonic() + limit
    with open(out, "a", buffering=1) as log:
        while time.monotonic() < deadline:
            started = time.monotonic()
            log.write(f"{time.time():.3f} {attempt(ip, port, timeout)}\n")
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("ports", type=int, nargs="+")
    s.add_argument("--name", default="pod")
    c = sub.add_parser("connect")
    c.add_argument("ip")
    c.add_argument("port", type=int)
    c.add_argument("--timeout", type=float, default=1.0)
    w = sub.add_parser("watch")
    w.add_argument("ip")
    w.add_argument("port", type=int)
    w.add_argument("--out", required=True)
    w.add_argument("--interval", type=float, default=0.05)
    w.add_argument("--timeout", type=float, default=0.3)
    w.add_argument("--limit", type=float, default=900.0, help="stop by itself after this many seconds")
    args = parser.parse_args(argv)
    if args.cmd == "serve":
        return serve(args.ports, args.name)
    if args.cmd == "connect":
        result = attempt(args.ip, args.port, args.timeout)
        print(result, flush=True)
        return 0 if result == "ok" else 1
    return watch(args.ip, args.port, args.out, args.interval, args.timeout, args.limit)


if __name__ == "__main__":
    sys.exit(main())
