"""Pings written in batches by one thread, each request answered once its ping is stored.

One transaction per ping made the database the bottleneck of ``alert-jobs serve``
(every ping: BEGIN, locked read, UPDATE, INSERT, COMMIT, each through the threadpool).
Here the HTTP handler puts its ping on a queue and waits on its own future; one writer
thread takes everything queued (up to ``max_batch``) and stores it with
:meth:`~alert_jobs.families.heartbeat.store.HeartbeatStore.ping_many` in one
transaction, then resolves the futures. Under load batches grow by themselves (what
queued while the last batch was written); when idle a batch is one ping, so no ping
waits for a timer.

The handler answers 2xx only after its future resolved, i.e. after the commit: every
2xx ping is stored. A ping that waited longer than the handler's timeout is cancelled
if still queued (then it is never written and the client gets 503 and retries); one the
writer already took is written, and its late 503 only costs a duplicate ping.

A failed batch (the database went away, a deadlock) is retried one ping per
transaction, so one bad ping cannot fail its neighbours.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future

from alert_jobs.families.heartbeat.store import HeartbeatStore, Ping, PingResult

log = logging.getLogger("alert_jobs.ping")
MAX_BATCH = 256

Outcome = PingResult | None | Exception
_STOP = object()


class PingWriter:
    """A writer thread in front of a :class:`HeartbeatStore`; :meth:`submit` a ping,
    wait on the returned future (its result is what :meth:`HeartbeatStore.ping_many`
    gave for that ping)."""

    def __init__(self, store: HeartbeatStore, max_batch: int = MAX_BATCH):
        self.store = store
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[tuple[Ping, Future[Outcome]] | object] = \
            queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.batches = 0  # counters, for the benchmark and the curious
        self.written = 0

    def start(self) -> PingWriter:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="ping-writer",
                                                daemon=True)
                self._thread.start()
        return self

    def stop(self, timeout: float = 10) -> None:
        """Write what is queued, then end the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(_STOP)
            thread.join(timeout)

    def submit(self, ping: Ping) -> Future[Outcome]:
        future: Future[Outcome] = Future()
        if self._thread is None:
            self.start()
        self._queue.put((ping, future))
        return future

    # ----- the writer thread -----------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            items: list[tuple[Ping, Future[Outcome]]] = []
            for item in self._drain(first):
                if item is _STOP:
                    stopping = True
                    continue
                assert isinstance(item, tuple)
                if item[1].set_running_or_notify_cancel():  # False: the handler gave up
                    items.append(item)
            if items:
                self._write(items)

    def _drain(self, first: object) -> list[object]:
        out = [first]
        while len(out) < self.max_batch:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return out

    def _write(self, items: list[tuple[Ping, Future[Outcome]]]) -> None:
        try:
            results = self.store.ping_many([ping for ping, _ in items])
        except Exception:
            if len(items) > 1:
                log.warning("a batch of %d pings failed; writing them one by one",
                            len(items), exc_info=True)
            results = []
            for ping, _ in items:
                try:
                    results.extend(self.store.ping_many([ping]))
                except Exception as exc:
                    log.exception("storing a ping for %s failed", ping.slug)
                    results.append(exc)
        self.batches += 1
        self.written += len(items)
        for (_, future), result in zip(items, results, strict=True):
            future.set_result(result)
