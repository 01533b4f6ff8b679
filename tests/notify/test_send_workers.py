"""How many threads send a batch: one to start with (against a receiver that answers
at once more threads only fight over the GIL: benchmarks/delivery_bench.py), growing
while the process waits on a slow receiver, so its latency is hidden — against a real
HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import time
from typing import Any

from alert_jobs.config import WebhookReceiverConfig
from alert_jobs.notify.contract import sample_group
from alert_jobs.notify.send import START_THREADS, SendWorkers, send_all
from alert_jobs.notify.webhook import WebhookReceiver
from alert_jobs.store import OutboxItem
from tests.conftest import HttpReceiver

DELAY = 0.1  # seconds the slow receiver takes per request


def items(n: int, tag: str) -> list[OutboxItem]:
    return [OutboxItem(i, "hook", "firing", f"hook:{tag}:{i}",
                       dict(sample_group(dedup_key=f"hook:{tag}:{i}")), 0, None, None, "test")
            for i in range(n)]


def receivers(url: str) -> dict[str, Any]:
    return {"hook": WebhookReceiver(WebhookReceiverConfig(name="hook", type="webhook",
                                                          url=url))}


def test_senders_start_as_one_and_grow_to_hide_a_slow_receiver(
        http_receiver: HttpReceiver) -> None:
    assert START_THREADS == 1
    http_receiver.delay_seconds = DELAY
    hook = receivers(http_receiver.url)
    batch = items(48, "slow")
    started = time.monotonic()
    with SendWorkers(batch, hook, concurrency=16, deadline=10.0) as workers:
        assert workers.threads == 1
        outcomes: list[Any] = []
        while not workers.done:
            outcomes += workers.collect(timeout=30.0, count=len(batch) - len(outcomes))
        grown = workers.threads
    took = time.monotonic() - started
    assert [(error, skipped) for _, error, skipped in outcomes] == [(None, False)] * 48
    assert len({r.json()["dedup_key"] for r in http_receiver.requests}) == 48
    assert grown > 4  # the pool grew while the threads waited on the receiver
    assert took < 48 * DELAY / 2  # well under one after another (4.8 s)

    # Positive control: one thread at a time is one request after another.
    started = time.monotonic()
    assert all(error is None for _, error, _ in send_all(items(8, "one"), hook,
                                                         concurrency=1, deadline=10.0))
    assert time.monotonic() - started >= 8 * DELAY
