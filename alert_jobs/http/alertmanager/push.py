"""``POST /api/v2/alerts``: alerts pushed by Prometheus (``alerting.alertmanagers`` pointed
here), or anything else that speaks Alertmanager's ``postableAlerts``.

The batch is validated whole (a bad alert refuses the push with 400 and every reason, in
Alertmanager's error shape, and nothing is written), then goes through the ``external``
family (:mod:`alert_jobs.families.external.run`): the same engine, routes, grouping and
timeline as our own checks. The answer does not wait for receivers: what the push made
due is delivered right after it (one delivery at a time; pushes that arrive meanwhile
are covered by one more round), and anything left is the outbox sensor's, as always.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from alert_jobs.config import RulesError, RulesFile
from alert_jobs.families.external.check import InvalidAlerts, parse_alerts
from alert_jobs.families.external.run import receive
from alert_jobs.http.alertmanager.auth import ApiAuth
from alert_jobs.http.alertmanager.errors import ApiError, api, read_json
from alert_jobs.runtime.deliver import deliver
from alert_jobs.store import Timeline, utcnow

log = logging.getLogger("alert_jobs.api")


class Deliveries:
    """Delivery after pushes, off the request: one round at a time; a push that arrives
    during a round asks for one more (Prometheus pushes every few seconds under load:
    thousands of concurrent deliveries would only fight over the same outbox rows)."""

    #: Deliveries in a row while each sends something (a backlog of 500 × ROUNDS rows
    #: at most; the rest is the outbox sensor's).
    ROUNDS = 20

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = False
        self._again: tuple[RulesFile, Timeline] | None = None

    def run(self, rules: RulesFile, timeline: Timeline) -> None:
        with self._lock:
            if self._running:
                self._again = (rules, timeline)
                return
            self._running = True
        while True:
            for _ in range(self.ROUNDS):  # one delivery sends a bounded batch: drain
                try:
                    if not deliver(rules, timeline).sent:
                        break
                except Exception:  # the outbox keeps it; the outbox sensor retries
                    log.exception("delivery after a push failed; the outbox sensor retries")
                    break
            with self._lock:
                if self._again is None:
                    self._running = False
                    return
                rules, timeline = self._again
                self._again = None


def routes(auth: ApiAuth, get_timeline: Callable[[], Timeline],
           get_rules: Callable[[], RulesFile]) -> list[Route]:
    deliveries = Deliveries()

    async def post_alerts(request: Request, caller: str) -> Response:
        body = await read_json(request)
        try:
            alerts = parse_alerts(body)
        except InvalidAlerts as exc:
            raise ApiError(400, str(exc)) from None
        try:
            rules = get_rules()
        except RulesError:
            rules = RulesFile()
        timeline = get_timeline()
        try:
            report = await run_in_threadpool(receive, rules, timeline, alerts, now=utcnow(),
                                             caller=caller)
        except SQLAlchemyError as exc:  # Prometheus sends the alerts again at its next resend
            log.exception("a push of %d alert(s) could not be stored", len(alerts))
            raise ApiError(500, f"the alerts could not be stored ({type(exc).__name__}); "
                                "send them again") from None
        if not report.notifies:  # a re-send that changed nothing: nothing new to deliver
            return Response(status_code=200)
        return Response(status_code=200,
                        background=BackgroundTask(deliveries.run, rules, timeline))

    return [Route("/api/v2/alerts", api(auth, post_alerts), methods=["POST"])]
