"""``GET /heartbeats``: every heartbeat check, the broken ones first.

For each check of the rules file (and some of those created by their first ping): its
state now, its schedule in words, the last ping, when it turns late and down if no ping
arrives, its last few pings, the ping URL to use and a link to its active alerts. The
state and deadlines come from the heartbeat family's own :func:`evaluate` over the
stored row with the rules' schedule, so the page and the sensor never disagree about
when a check is late. Tokens are never shown: the page only says that one is needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from alert_jobs.config import RulesFile
from alert_jobs.core.durations import format_duration, short_duration
from alert_jobs.core.model import AlertRecord
from alert_jobs.families.heartbeat.check import (
    Evaluation,
    HeartbeatState,
    HeartbeatStatus,
    evaluate,
)
from alert_jobs.families.heartbeat.config import AUTO_RULE, HeartbeatCheck, HeartbeatSettings
from alert_jobs.families.heartbeat.run import declared_checks
from alert_jobs.families.heartbeat.store import HeartbeatRow, HeartbeatStore, schedule_of
from alert_jobs.http.pages.context import Pages
from alert_jobs.http.pages.render import ago, page, refusal, when

#: Pings shown per check.
PINGS_SHOWN = 5
#: Checks created by their first ping shown (there may be thousands; the rest are counted).
AUTO_SHOWN = 100
#: Broken first; among equals by name.
_ORDER = {HeartbeatStatus.DOWN: 0, HeartbeatStatus.LATE: 1, HeartbeatStatus.STARTED: 2,
          HeartbeatStatus.UP: 3, HeartbeatStatus.NEW: 4, HeartbeatStatus.PAUSED: 5}
_TONE = {HeartbeatStatus.DOWN: "bad", HeartbeatStatus.LATE: "bad",
         HeartbeatStatus.STARTED: "ok", HeartbeatStatus.UP: "ok",
         HeartbeatStatus.NEW: "muted", HeartbeatStatus.PAUSED: "muted"}


@dataclass(frozen=True)
class PingView:
    at: datetime
    kind: str  # success | fail | start | ignored (+ exit code)
    tone: str
    duration: str
    source: str


@dataclass(frozen=True)
class AlertLink:
    fingerprint: str
    problem: str
    state: str


@dataclass(frozen=True)
class CheckView:
    """One check as the page shows it (plain values: the template only formats)."""

    rule: str
    slug: str
    status: str
    tone: str
    severity: str
    schedule: str
    declared: bool
    needs_token: bool
    last_ping: datetime | None
    last_signal: str
    run_started: datetime | None
    deadlines: list[str]
    reasons: list[str]
    pings: list[PingView]
    alerts: list[AlertLink]
    n_pings: int

    @property
    def order(self) -> tuple[int, str]:
        return _ORDER[HeartbeatStatus(self.status)], self.slug


@dataclass
class Overview:
    checks: list[CheckView]  # broken first
    auto_shown: int  # of them, created by their first ping
    auto_total: int
    counts: dict[str, int] = field(default_factory=dict)


def _signal(state: HeartbeatState) -> str:
    if state.last_signal is None:
        return ""
    code = f" (exit code {state.last_exit_code})" if state.last_exit_code is not None else ""
    return f"{state.last_signal}{code}"


def deadlines(state: HeartbeatState, ev: Evaluation, now: datetime) -> list[str]:
    """When the check changes by time alone, in words, from the family's evaluation."""
    if ev.status == HeartbeatStatus.PAUSED:
        return ["Paused: no deadline. " + ("Pings are ignored until someone resumes it."
                                           if state.manual_resume
                                           else "The next ping resumes it.")]
    out = []
    if ev.grace_start is not None and ev.deadline is not None:
        if now < ev.grace_start:
            out.append(f"Late at {when(ev.grace_start)} ({ago(ev.grace_start, now)}) "
                       f"if no ping arrives")
        elif now < ev.deadline:
            out.append(f"Late since {when(ev.grace_start)} ({ago(ev.grace_start, now)})")
        if now < ev.deadline:
            out.append(f"Down at {when(ev.deadline)} ({ago(ev.deadline, now)}) "
                       f"if no ping arrives")
        else:
            out.append(f"Down since {when(ev.deadline)} ({ago(ev.deadline, now)}): "
                       f"the ping due {when(ev.grace_start)} never came")
    elif state.last_start is None:
        out.append("No deadline yet: the schedule starts with the first ping")
    if state.last_start is not None:
        limit = state.last_start + state.schedule.run_limit()
        verb = "must finish by" if now < limit else "did not finish by"
        out.append(f"The run started {when(state.last_start)} {verb} {when(limit)} "
                   f"({ago(limit, now)})")
    return out


def _ping_view(p: dict[str, Any]) -> PingView:
    kind = str(p["kind"])
    if p.get("exit_code") is not None:
        kind += f" (exit code {p['exit_code']})"
    seconds = p.get("duration_seconds")
    return PingView(p["at"], kind, {"success": "ok", "fail": "bad"}.get(p["kind"], "muted"),
                    short_duration(timedelta(seconds=seconds)) if seconds is not None else "",
                    p.get("remote_addr") or "")


def check_view(rule: HeartbeatCheck | None, row: HeartbeatRow | None, state: HeartbeatState,
               now: datetime, pings: list[dict[str, Any]], alerts: list[AlertRecord],
               *, rule_name: str, severity: str, needs_token: bool) -> CheckView:
    ev = evaluate(state, now)
    schedule = state.schedule.describe()
    if state.schedule.max_duration is not None:
        schedule += f"; each run within {format_duration(state.schedule.max_duration)}"
    links = [AlertLink(a.fingerprint, a.labels.get("problem", ""), str(a.state))
             for a in alerts if a.rule == rule_name and a.labels.get("heartbeat") == state.slug]
    return CheckView(
        rule=rule_name, slug=state.slug, status=str(ev.status), tone=_TONE[ev.status],
        severity=severity, schedule=schedule, declared=rule is not None,
        needs_token=needs_token, last_ping=state.last_ping, last_signal=_signal(state),
        run_started=state.last_start, deadlines=deadlines(state, ev, now),
        reasons=[ev.reasons[p] for p in sorted(ev.reasons)],
        pings=[_ping_view(p) for p in pings], alerts=links,
        n_pings=row.n_pings if row else 0)


def overview(rules: RulesFile, store: HeartbeatStore, alerts: list[AlertRecord],
             now: datetime) -> Overview:
    """Every declared check (with or without a row yet) and some auto-created ones."""
    tz = rules.defaults.timezone
    declared = declared_checks(rules)
    rows = store.rows_of(list(declared))
    auto_rows, auto_total = store.undeclared(AUTO_SHOWN)
    pings = store.recent_pings([*declared, *(r.state.slug for r in auto_rows)], PINGS_SHOWN)
    checks = []
    for slug, check in declared.items():
        row = rows.get(slug)
        schedule = schedule_of(check, tz)  # the rules' schedule: the sensor syncs to it
        state = (row.state.evolve(schedule=schedule, manual_resume=check.manual_resume)
                 if row else HeartbeatState(slug, schedule, manual_resume=check.manual_resume))
        checks.append(check_view(check, row, state, now, pings.get(slug, []), alerts,
                                 rule_name=check.name, severity=str(check.severity),
                                 needs_token=check.token is not None))
    auto = rules.section(HeartbeatSettings).auto_create
    auto_checks = [check_view(None, row, row.state, now, pings.get(row.state.slug, []),
                              alerts, rule_name=AUTO_RULE, severity=str(auto.severity),
                              needs_token=auto.token is not None)
                   for row in auto_rows]
    everything = sorted([*checks, *auto_checks], key=lambda c: c.order)
    counts: dict[str, int] = {}
    for c in everything:
        counts[c.status] = counts.get(c.status, 0) + 1
    return Overview(everything, len(auto_checks), auto_total, counts)


def routes(pages: Pages) -> list[Route]:
    async def heartbeats(request: Request) -> Response:
        now = datetime.now(UTC)
        rules = pages.rules()
        try:
            view = await run_in_threadpool(
                lambda: overview(rules, HeartbeatStore(pages.get_timeline()),
                                 pages.get_timeline().alerts.list(), now))
        except Exception as exc:  # the database is down: say so, do not crash
            return refusal(request, "Timeline unavailable",
                           f"The timeline database did not answer ({type(exc).__name__}), so "
                           "the heartbeats cannot be shown. Try again once it is back.", 503)
        order = [s for s in _ORDER if view.counts.get(str(s))]
        return page(request, "heartbeats.html", title="Heartbeats", view=view,
                    summary=[(str(s), view.counts[str(s)], _TONE[s]) for s in order],
                    page_now=now)

    return [Route("/heartbeats", heartbeats, methods=["GET"])]
