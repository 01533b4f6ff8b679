"""An ``httpx.AsyncClient`` transport that sends on httpx's *sync* connection pool in threads.

Why: httpx's own async pool is CPU-heavy under concurrency (encode/httpx#3215, open):
on this project's 2-core CI machine it managed ~200-400 requests/s against a local
receiver, while the sync pool did ~800/s. Receivers keep their ``async deliver`` and a
bounded ``AsyncClient``; only the wire work moves to a bounded thread pool, which the
sync pool (thread-safe) handles well. The response body is read in the thread, so the
event loop never blocks on the network.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import httpx


class ThreadedTransport(httpx.AsyncBaseTransport):
    """Bounded: at most ``max_workers`` requests on the wire, ``limits`` connections."""

    def __init__(self, max_workers: int, limits: httpx.Limits | None = None):
        self._sync = httpx.HTTPTransport(limits=limits or httpx.Limits(
            max_connections=max_workers, max_keepalive_connections=max_workers))
        self._pool = ThreadPoolExecutor(max_workers=max_workers,
                                        thread_name_prefix="alert-jobs-send")

    def _send(self, request: httpx.Request) -> httpx.Response:
        response = self._sync.handle_request(request)
        try:
            content = response.read()
        finally:
            response.close()
        return httpx.Response(response.status_code, headers=response.headers, content=content,
                              extensions=response.extensions, request=request)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._send, request)

    async def aclose(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._sync.close()
