"""Blocking calls (source reads) on a few threads at once, each within its own time limit.

A batch run reads many sources. One after another, the run takes the sum of their
times; all at once, it opens hundreds of connections. Here at most ``concurrency``
calls run at a time, and a call still running ``limit`` seconds after it started is
given up: its result is ``late(limit)`` (for a rule, its ``error`` observation) and its
thread stops counting against the bound, so a source that ignores its own timeout (a
hung driver, a black-holed host) costs the other sources nothing. The given-up thread is
a daemon thread: it ends when its call returns, or with the process.

Sources normally enforce their own timeout (``statement_timeout``, a SQLite progress
handler) and answer with a clearer reason; the limit here is the backstop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Task(Generic[T]):
    """One call: what to run, for at most how long, and what it is if it runs longer."""

    call: Callable[[], T]
    limit: float  # seconds from the call's start
    late: Callable[[float], T]  # the result of a call given up after ``limit`` seconds


@dataclass
class _Slot(Generic[T]):
    deadline: float
    value: T | None = None
    error: BaseException | None = None
    done: bool = False


def run_bounded(tasks: Sequence[Task[T]], *, concurrency: int) -> list[T]:
    """Results of ``tasks`` in their order; at most ``concurrency`` calls at a time.

    A call that raises re-raises here (the others are not waited for): turn expected
    failures into results inside the call.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    settled: dict[int, T] = {}
    running: dict[int, _Slot[T]] = {}
    wake = threading.Condition()
    started = 0

    def work(slot: _Slot[T], call: Callable[[], T]) -> None:
        try:
            value = call()
        except BaseException as exc:  # re-raised in the caller's thread
            with wake:
                slot.error, slot.done = exc, True
                wake.notify()
            return
        with wake:
            slot.value, slot.done = value, True
            wake.notify()

    with wake:
        while len(settled) < len(tasks):
            while started < len(tasks) and len(running) < concurrency:
                task = tasks[started]
                slot: _Slot[T] = _Slot(deadline=time.monotonic() + task.limit)
                running[started] = slot
                threading.Thread(target=work, args=(slot, task.call), daemon=True,
                                 name=f"bounded-{started}").start()
                started += 1
            now = time.monotonic()
            for i, slot in list(running.items()):
                if slot.done:
                    if slot.error is not None:
                        raise slot.error
                    settled[i] = slot.value  # type: ignore[assignment]
                    del running[i]
                elif now >= slot.deadline:  # given up: its thread frees the bound
                    settled[i] = tasks[i].late(tasks[i].limit)
                    del running[i]
            can_start = started < len(tasks) and len(running) < concurrency
            if running and not can_start:
                first = min(slot.deadline for slot in running.values())
                wake.wait(timeout=max(0.0, first - time.monotonic()))
    return [settled[i] for i in range(len(tasks))]
