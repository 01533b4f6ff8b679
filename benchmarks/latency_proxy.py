"""A TCP proxy on 127.0.0.1 that delays every chunk by a fixed time in each direction.

It stands in for a Redis that is a network away (a hosted Redis is typically 5–50 ms
round trip from the monitor) without leaving loopback.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress


def _pump(src: socket.socket, dst: socket.socket, delay: float) -> None:
    try:
        while chunk := src.recv(65536):
            time.sleep(delay)
            dst.sendall(chunk)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


@contextmanager
def latency_proxy(upstream_port: int, one_way_delay: float) -> Iterator[int]:
    """Yield a local port that forwards to ``upstream_port`` with ``one_way_delay`` s each way."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(256)
    listener.settimeout(0.2)
    stop = threading.Event()
    sockets: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                continue
            upstream = socket.create_connection(("127.0.0.1", upstream_port))
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sockets.extend((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(a, b, one_way_delay), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(timeout=2)
        listener.close()
        for s in sockets:
            s.close()
