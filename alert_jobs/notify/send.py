"""Sending many messages at once, with deadlines; and when to try a failed one again.

* Messages are sent by ``concurrency`` worker threads (:class:`SendWorkers`). Each
  thread runs one event loop for the whole batch (receivers keep their ``async
  deliver``) and one ``httpx.AsyncClient`` whose requests run on a sync
  ``httpx.Client`` over one connection pool shared by the threads, right in the
  calling thread (:class:`BlockingClient`). Why: per message, an asyncio task, a hop to an
  executor thread and back, and httpx's async pool cost 3-4x the CPU of a plain
  ``httpx.Client.post`` loop (issue #12: 3.65 ms against 0.91 ms); a thread that blocks
  on its own socket costs what the loop costs, and 16 of them overlap the waiting.
* Each send has a deadline: HTTP timeouts are clamped to it, and
  ``asyncio.timeout`` bounds receivers that await other things (SMTP in a thread).
* A failure is retried after the receiver's ``Retry-After`` when it gives one, else
  with exponential backoff and jitter (:func:`retry_wait`).

Claiming the messages, keeping their lease and recording each outcome is the
runtime's job (:mod:`alert_jobs.runtime.batch`, which sends with :class:`SendWorkers`):
this module knows receivers, not the database.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any, Generic, Protocol, TypeVar

import httpx

from alert_jobs.notify.base import DeliveryError, Receiver
from alert_jobs.notify.contract import GroupMessage

log = logging.getLogger("alert_jobs.outbox")

class _NoRequestLines(logging.Filter):
    """httpx logs every request's full URL at INFO; a receiver's URL is a secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("HTTP Request:")


_HTTPX_LOG = logging.getLogger("httpx")
if not any(isinstance(f, _NoRequestLines) for f in _HTTPX_LOG.filters):
    _HTTPX_LOG.addFilter(_NoRequestLines())

BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=1)
DEFAULT_CONCURRENCY = 16
DEFAULT_DEADLINE = 30.0


def backoff(attempt: int, *, base: timedelta = BACKOFF_BASE, cap: timedelta = BACKOFF_CAP,
            rng: Callable[[], float] = random.random) -> timedelta:
    """Wait before retry ``attempt`` (1-based): base·2^(attempt-1), capped, jittered to 50–100 %.

    Jitter spreads retries of many queued messages so a recovering receiver is not
    hit by all of them in the same second.
    """
    raw = min(cap.total_seconds(), base.total_seconds() * 2 ** max(0, attempt - 1))
    return timedelta(seconds=raw * (0.5 + 0.5 * rng()))


def retry_wait(error: DeliveryError, attempt: int, *, base: timedelta = BACKOFF_BASE
               ) -> timedelta:
    """How long to wait before trying a failed message again."""
    if error.retry_after is not None:
        # The receiver said when to come back: that is the wait, plus up to 10 % jitter
        # so a queue of rate-limited messages does not return in lockstep.
        return timedelta(seconds=error.retry_after * (1 + 0.1 * random.random()))
    return backoff(attempt, base=base)


class Addressed(Protocol):
    """A message for one receiver (an outbox row)."""

    @property
    def receiver(self) -> str: ...

    @property
    def payload(self) -> dict[str, Any]: ...

    @property
    def dedup_key(self) -> str: ...


M = TypeVar("M", bound=Addressed)


class DeadlineExceeded(TimeoutError):
    """A request cut short by the send's deadline rather than the receiver's own timeout."""


class _NoTransport(httpx.AsyncBaseTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise RuntimeError("BlockingClient sends through its sync client")  # pragma: no cover


class BlockingClient(httpx.AsyncClient):
    """An ``AsyncClient`` whose requests run on a sync ``httpx.Client``, in this thread.

    Receivers keep their ``await http.post(...)``; the request is what a plain sync loop
    does (same code path, same cost) on a connection pool shared by the worker threads.
    Only for a loop that has nothing else to do meanwhile (one per worker thread of
    :class:`SendWorkers`): the request blocks that loop. Timeouts are clamped to
    ``deadline``; a request cut by the clamp raises :class:`DeadlineExceeded`, so the
    error names the deadline, not the receiver's (longer) timeout.
    """

    def __init__(self, pool: httpx.HTTPTransport, deadline: float):
        super().__init__(transport=_NoTransport(), timeout=deadline)
        self._sync = httpx.Client(transport=pool, timeout=deadline)
        self._plain_headers: dict[str, str] = {k.lower(): v for k, v in self._sync.headers.items()}
        self._timeouts: dict[Any, dict[str, float | None]] = {}
        self._pool = pool
        self._deadline = deadline

    async def request(self, method: str, url: httpx.URL | str,
                      **kwargs: Any) -> httpx.Response:
        timeout, cut = self._clamp(kwargs.get("timeout", httpx.USE_CLIENT_DEFAULT))
        kwargs["timeout"] = timeout
        try:
            if all(kwargs.get(k, d) is d for k, d in _PLAIN):
                return self._plain(method, url, kwargs)
            return self._sync.request(method, url, **kwargs)
        except httpx.TimeoutException:
            if cut:
                raise DeadlineExceeded from None
            raise

    def _clamp(self, asked: Any) -> tuple[Any, bool]:
        """The request's timeout cut to the deadline, and whether the cut is binding."""
        if asked is None or asked is httpx.USE_CLIENT_DEFAULT:
            return self._deadline, asked is None
        if isinstance(asked, int | float) and not isinstance(asked, bool):
            return min(float(asked), self._deadline), asked > self._deadline
        return asked, False  # an httpx.Timeout: the receiver's own, left as it is

    def _plain(self, method: str, url: httpx.URL | str, kwargs: dict[str, Any]
               ) -> httpx.Response:
        """A request without cookies, auth, params or redirects, which is every
        receiver's POST: straight to the pool, skipping the ``Client`` layer (about
        0.25 ms of CPU per request, a third of a plain ``Client.post``)."""
        headers = self._plain_headers
        if kwargs.get("headers"):  # names are case-insensitive: the receiver's win
            headers = {**headers, **{k.lower(): v for k, v in kwargs["headers"].items()}}
        timeout = kwargs["timeout"]
        if timeout not in self._timeouts:
            self._timeouts[timeout] = httpx.Timeout(timeout).as_dict()
        request = httpx.Request(method, url, headers=headers, content=kwargs.get("content"),
                                json=kwargs.get("json"),
                                extensions={"timeout": self._timeouts[timeout]})
        response = self._pool.handle_request(request)
        try:
            raw = b"".join(response.iter_raw())  # decoded once, by the Response below
        finally:
            response.close()
        return httpx.Response(response.status_code, headers=response.headers, content=raw,
                              extensions=response.extensions, request=request)


#: ``AsyncClient.request`` arguments that must be at their defaults for the plain path.
_PLAIN: tuple[tuple[str, Any], ...] = (
    ("data", None), ("files", None), ("params", None), ("cookies", None),
    ("auth", httpx.USE_CLIENT_DEFAULT), ("follow_redirects", httpx.USE_CLIENT_DEFAULT),
    ("extensions", None))


async def send_one(item: Addressed, receivers: Mapping[str, Receiver[Any]],
                   http: httpx.AsyncClient, *, deadline: float
                   ) -> tuple[DeliveryError | None, bool]:
    """Send one message within ``deadline``: (error or None, skipped)."""
    receiver = receivers.get(item.receiver)
    if receiver is None:
        return DeliveryError(f"receiver {item.receiver!r} is not in the rules "
                             "file; kept and retried until it is restored"), False
    group: GroupMessage = item.payload  # type: ignore[assignment]
    if not receiver.wants(group):
        return None, True
    group = receiver.prepare(group)
    started = time.monotonic()
    try:
        async with asyncio.timeout(deadline):  # no task per send, unlike wait_for on 3.11
            await receiver.deliver(group, http)
    except DeliveryError as exc:
        return exc, False
    except TimeoutError:
        return DeliveryError(f"no answer within the {deadline:g} s delivery deadline"), False
    except Exception as exc:  # a receiver bug: keep the message, say what broke
        log.exception("receiver %s failed", item.receiver)
        return DeliveryError(f"receiver error ({type(exc).__name__})"), False
    log.info("delivered %s to %s in %.0f ms", item.dedup_key, item.receiver,
             (time.monotonic() - started) * 1000)
    return None, False


Outcome = tuple[M, DeliveryError | None, bool]  # (item, error or None, skipped)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """httpx's default TLS context, built once per process: loading the CA bundle costs
    ~30 ms of CPU, which every batch of messages would otherwise pay again."""
    return httpx.create_ssl_context()


#: Threads a batch starts with, and how the pool grows: every ``TUNE_EVERY_S`` the
#: reader looks at this process's CPU use; while it is below ``BUSY_CPU`` of one core
#: (the GIL), the threads mostly wait on receivers, so ``GROW_BY`` more start, up to
#: ``concurrency``. Against a receiver that answers at once one thread already keeps
#: the GIL busy and more would only fight over it (measured: 16 threads cost 0.3-0.4
#: ms more CPU per message than 4, and 4 about 0.1 ms more than one: 1.82x the
#: sequential loop's CPU per message against 1.28x); against a slow one the pool grows
#: to what hides the latency (tests/notify/test_send_workers.py).
START_THREADS = 1
TUNE_EVERY_S = 0.02
BUSY_CPU = 0.8
GROW_BY = 1


class SendWorkers(Generic[M]):
    """Up to ``concurrency`` threads sending ``items`` in order.

    :meth:`collect` hands over every ``(item, error, skipped)`` finished so far (and
    grows the pool while the process has CPU to spare, see :data:`START_THREADS`);
    :attr:`done` says when every thread has finished and everything was collected.
    :meth:`stop` lets every thread finish its current send and start no other.
    ``skip(item)`` is asked just before a send: True drops the item unsent (another
    worker holds it now).

    A finished send is appended to a list, not put on a queue that wakes the collector:
    waking another thread per message (a futex wake and a GIL hand-off each way) cost
    about a third of a sequential loop's CPU per message against an instant receiver.
    The collector says how many it waits for (:meth:`collect`'s ``count``), and only the
    send that reaches that count wakes it.
    """

    def __init__(self, items: Iterable[M], receivers: Mapping[str, Receiver[Any]], *,
                 concurrency: int, deadline: float,
                 skip: Callable[[M], bool] | None = None) -> None:
        self._todo: deque[M] = deque(items)
        self._receivers = receivers
        self._deadline = deadline
        self._skip = skip
        self._stopped = threading.Event()
        self._finished: deque[Outcome[M]] = deque()
        self._want = 1  # finished sends at which the collector wants waking
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self.limit = max(1, min(concurrency, len(self._todo)))
        self._pool = httpx.HTTPTransport(verify=_tls_context(), limits=httpx.Limits(
            max_connections=self.limit, max_keepalive_connections=self.limit))
        self._workers: list[threading.Thread] = []
        self._running = 0
        self._tuned_at = (time.monotonic(), time.process_time())

    @property
    def threads(self) -> int:
        return len(self._workers)

    @property
    def done(self) -> bool:
        return self._running == 0 and not self._finished

    def __enter__(self) -> SendWorkers[M]:
        for _ in range(min(START_THREADS, self.limit)):
            self._start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        for worker in self._workers:
            worker.join()
        self._pool.close()

    def stop(self) -> None:
        self._stopped.set()

    def collect(self, timeout: float, count: int = 1) -> list[Outcome[M]]:
        """Every send finished so far, once ``count`` of them are (or every thread has
        ended, or ``timeout`` passed: then what there is, maybe nothing)."""
        deadline = time.monotonic() + timeout
        self._want = max(1, count)
        while True:
            self._wake.clear()  # before the check: a send finishing after it wakes us
            if len(self._finished) >= self._want or not self._running:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._tune()
            self._wake.wait(min(left, TUNE_EVERY_S) if self._may_grow() else left)
        finished = self._finished
        return [finished.popleft() for _ in range(len(finished))]

    def _may_grow(self) -> bool:
        return (self.threads < self.limit and len(self._todo) > self.threads
                and not self._stopped.is_set())

    def _tune(self) -> None:
        wall, cpu = time.monotonic(), time.process_time()
        since_wall, since_cpu = self._tuned_at
        if wall - since_wall < TUNE_EVERY_S:
            return
        self._tuned_at = (wall, cpu)
        if self._may_grow() and (cpu - since_cpu) < BUSY_CPU * (wall - since_wall):
            for _ in range(min(GROW_BY, self.limit - self.threads)):
                self._start()

    def _start(self) -> None:
        worker = threading.Thread(target=self._work, daemon=True,
                                  name=f"alert-jobs-send-{len(self._workers)}")
        self._workers.append(worker)
        with self._lock:
            self._running += 1
        worker.start()

    def _work(self) -> None:
        try:
            asyncio.run(self._send_until_done())
        except BaseException:  # its unsent rows come due again when their lease ends
            log.exception("send worker failed")
        finally:
            with self._lock:
                self._running -= 1
            self._wake.set()

    async def _send_until_done(self) -> None:
        async with BlockingClient(self._pool, self._deadline) as http:
            while not self._stopped.is_set():
                try:
                    item = self._todo.popleft()
                except IndexError:
                    return
                if self._skip is not None and self._skip(item):
                    continue
                error, skipped = await send_one(item, self._receivers, http,
                                                deadline=self._deadline)
                self._finished.append((item, error, skipped))
                if len(self._finished) >= self._want and not self._wake.is_set():
                    self._wake.set()


def send_all(items: Sequence[M], receivers: Mapping[str, Receiver[Any]], *, concurrency: int,
             deadline: float) -> list[Outcome[M]]:
    """Send items concurrently; (item, error or None, skipped) for each, in order."""
    if not items:
        return []
    position = {id(item): i for i, item in enumerate(items)}
    out: list[Outcome[M] | None] = [None] * len(items)
    got = 0
    with SendWorkers(items, receivers, concurrency=concurrency, deadline=deadline) as workers:
        while not workers.done:  # woken once every send is done, not at each
            for outcome in workers.collect(timeout=3600.0, count=len(items) - got):
                out[position[id(outcome[0])]] = outcome
                got += 1
    return [o for o in out if o is not None]
