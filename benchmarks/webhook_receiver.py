"""A small, fast HTTP/1.1 webhook receiver on 127.0.0.1, for the delivery benchmark.

Run as a script (stdlib only, so it starts fast in its own process)::

    python benchmarks/webhook_receiver.py      # prints "PORT <n>" once it listens

One ``asyncio.Protocol`` per connection, keep-alive, bodies read by ``Content-Length``.
Every ``POST`` other than the control path is a delivery: its JSON body is parsed (as a
real receiver would) and its ``dedup_key`` counted. It answers ``200`` after
``delay_ms`` (0 = at once), or ``429`` with ``Retry-After`` for the first
``reject_first`` deliveries after a reset.

Control (JSON answers):

* ``GET /stats``: counters since the last reset and the process's own CPU seconds
  (total and kernel);
* ``POST /reset`` with ``{"delay_ms": 0, "reject_first": 0, "retry_after": 2}``:
  zero the counters and set the mode.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests"}


class State:
    def __init__(self) -> None:
        self.delay_ms = 0.0
        self.reject_first = 0
        self.retry_after = "2"
        self.reset()

    def reset(self) -> None:
        self.ok = 0  # deliveries answered 200
        self.rejected = 0  # deliveries answered 429
        self.keys: dict[str, int] = {}  # dedup_key -> deliveries answered 200
        self.connections = 0

    def stats(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "rejected": self.rejected, "distinct_ok": len(self.keys),
            "duplicates_ok": self.ok - len(self.keys), "connections": self.connections,
            "max_per_key": max(self.keys.values(), default=0),
            "cpu_s": time.process_time(), "sys_cpu_s": os.times().system,
            "delay_ms": self.delay_ms,
            "reject_first": self.reject_first, "retry_after": self.retry_after,
        }


STATE = State()


def _response(status: int, body: bytes, extra: str = "") -> bytes:
    head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n")
    return head.encode("latin-1") + body


class Receiver(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy = False  # a delayed answer is pending; keep later requests in order

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        STATE.connections += 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._drain()

    def _drain(self) -> None:
        while not self.busy and self.transport is not None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4:end + 4 + length])
            del self.buffer[:end + 4 + length]
            method, path = [*head[0].split(" "), "", ""][:2]
            self._handle(method, path, body)

    def _handle(self, method: str, path: str, body: bytes) -> None:
        assert self.transport is not None
        if method == "GET" and path == "/stats":
            self.transport.write(_response(200, json.dumps(STATE.stats()).encode()))
            return
        if method == "POST" and path == "/reset":
            config = json.loads(body or b"{}")
            STATE.delay_ms = float(config.get("delay_ms", 0))
            STATE.reject_first = int(config.get("reject_first", 0))
            STATE.retry_after = str(config.get("retry_after", 2))
            STATE.reset()
            self.transport.write(_response(200, b"{}"))
            return
        if method != "POST":
            self.transport.write(_response(404, b"{}"))
            return
        try:
            key = str(json.loads(body)["dedup_key"])
        except (ValueError, KeyError, TypeError):
            self.transport.write(_response(400, b'{"error":"no dedup_key"}'))
            return
        if STATE.rejected < STATE.reject_first:
            STATE.rejected += 1
            answer = _response(429, b'{"error":"slow down"}',
                               f"Retry-After: {STATE.retry_after}\r\n")
        else:
            STATE.ok += 1
            STATE.keys[key] = STATE.keys.get(key, 0) + 1
            answer = _response(200, b'{"ok":true}')
        if STATE.delay_ms <= 0:
            self.transport.write(answer)
            return
        self.busy = True
        asyncio.get_running_loop().call_later(STATE.delay_ms / 1000, self._answer, answer)

    def _answer(self, answer: bytes) -> None:
        self.busy = False
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(answer)
            self._drain()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def main() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Receiver, "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
