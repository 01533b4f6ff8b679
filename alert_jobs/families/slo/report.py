"""The monthly error-budget report: per SLO, how much of its budget the month spent, the
worst burn, and the alerts it raised with what people said about them.

**The month** is a UTC calendar month ``[YYYY-MM-01, next month)``, the same window as
the alert-quality review beside it, so the two reports of a month talk about the same
alerts. **The budget of a month** is the objective applied to that month's own events:
``(1 − objective) × events in the month`` bad events may happen; "spent" is the share of
that allowance the month's bad events used (over 100 %: the month broke its SLO). This is
the Workbook's event-based budget and does not depend on the rule's rolling ``period``
(30 or 28 days), which the per-SLO asset and the alerts use; the report answers "did we
keep the promise this month", the alerts "are we about to break it".

Sources: the stored buckets (``alert_slo_buckets``, read as plain numbers) for the
counts and the worst burn (the highest burn rate over the rule's shortest long window,
e.g. 1 h, among windows with at least ``min_events`` events), and ``alert_episodes`` for
the alerts (fired in the month; outcome, time to ack from the first notification, time
to resolve from firing).

Output: Markdown (Dagster metadata) and one self-contained HTML page (the jinja2 template
``templates/budget.html``, no script, inline SVG), written beside the monthly alert review.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import sqlalchemy as sa
from jinja2 import Environment, PackageLoader, StrictUndefined

from alert_jobs.config import RulesFile
from alert_jobs.core import months
from alert_jobs.core.durations import format_duration
from alert_jobs.core.months import month_bounds
from alert_jobs.families.slo.check import Bucket
from alert_jobs.families.slo.config import SloRule
from alert_jobs.families.slo.store import slo_buckets
from alert_jobs.notify.charts import BarChart, bar_chart
from alert_jobs.notify.html import escape
from alert_jobs.store import Timeline, schema

OUTCOMES = ("actionable", "false-positive", "noise", "duplicate")
FILE_PREFIX = "slo-budget-"


# ----- the month ---------------------------------------------------------------------


def previous_month(now: datetime) -> str:
    """The UTC month before ``now``'s (the one the schedule reports on the 1st)."""
    return months.previous_month(now.astimezone(UTC))


# ----- what the report holds -----------------------------------------------------------


@dataclass(frozen=True)
class AlertRow:
    """One alert episode of an SLO that fired in the month."""

    fired_at: datetime
    severity: str
    pages: int
    notifications: int
    outcome: str  # actionable | false-positive | noise | duplicate | none
    outcome_by: str
    acked: bool
    ack_seconds: float | None  # from the first notification (PagerDuty's ack time)
    resolve_seconds: float | None  # from firing; None while still open


@dataclass(frozen=True)
class Burn:
    """The worst burn of the month over one window length."""

    rate: float
    window: timedelta
    ending: datetime


@dataclass(frozen=True)
class SloBudget:
    """One SLO's month."""

    rule: str
    service: str
    objective: float  # percent
    good: float
    total: float
    coverage: float  # share of the month (up to now) covered by buckets with data
    budget_fraction: float
    worst: Burn | None
    alerts: list[AlertRow]

    @property
    def bad(self) -> float:
        return self.total - self.good

    @property
    def sli(self) -> float | None:
        """good / total over the month (0..1); None without events."""
        return self.good / self.total if self.total > 0 else None

    @property
    def spent(self) -> float | None:
        """Share of the month's error budget spent (1.0 = all of it; may exceed 1)."""
        if self.total <= 0:
            return None
        return self.bad / (self.budget_fraction * self.total)

    @property
    def remaining(self) -> float | None:
        return None if self.spent is None else 1.0 - self.spent

    @property
    def title(self) -> str:
        return self.service or self.rule


@dataclass(frozen=True)
class BudgetReport:
    month: str  # YYYY-MM
    slos: list[SloBudget]  # most budget spent first

    @property
    def over_budget(self) -> list[SloBudget]:
        return [s for s in self.slos if s.spent is not None and s.spent > 1.0]


# ----- computing it ----------------------------------------------------------------------


class Row(NamedTuple):
    """One stored bucket as plain numbers: times in epoch seconds. A month of per-minute
    buckets is 44,640 of them per SLO; reading them as numbers (not datetimes and
    :class:`Bucket` objects) keeps the served report well under a second per SLO."""

    start: float
    end: float
    good: float
    total: float
    has_data: bool


def rows_of(buckets: Sequence[Bucket]) -> list[Row]:
    return [Row(b.start.timestamp(), b.end.timestamp(), b.good, b.total, b.has_data)
            for b in buckets]


def month_rows(conn: sa.Connection, rule: str, start: datetime, end: datetime) -> list[Row]:
    """The rule's buckets ending inside ``(start, end]``, oldest first, in one query."""
    t = slo_buckets
    if conn.dialect.name == "sqlite":
        def epoch(col: Any) -> Any:
            return sa.cast(sa.func.strftime("%s", col), sa.Float)
    else:
        def epoch(col: Any) -> Any:
            return sa.cast(sa.extract("epoch", col), sa.Float)
    query = (sa.select(epoch(t.c.start), epoch(t.c.end), t.c.good, t.c.total, t.c.has_data)
             .where(t.c.rule == rule, t.c.end > start, t.c.end <= end).order_by(t.c.end))
    return [Row(float(a), float(b), float(g), float(n), bool(h))
            for a, b, g, n, h in conn.execute(query)]


def worst_burn(rows: Sequence[Row], window: timedelta, budget_fraction: float, *,
               min_events: float) -> Burn | None:
    """The highest burn rate over any ``window`` of consecutive buckets (a sliding sum in
    one pass; windows under ``min_events`` events are not judged, like the alerts)."""
    span = window.total_seconds()
    best: tuple[float, float] | None = None  # (rate, end)
    lo = 0
    good = total = 0.0
    for row in rows:
        good += row.good
        total += row.total
        while rows[lo].start < row.end - span:
            good -= rows[lo].good
            total -= rows[lo].total
            lo += 1
        if row.end - rows[lo].start < span or total <= 0 or total < min_events:
            continue
        rate = (total - good) / total / budget_fraction
        if best is None or rate > best[0] + 1e-12:
            best = (rate, row.end)
    if best is None:
        return None
    return Burn(best[0], window, datetime.fromtimestamp(best[1], UTC))


def slo_budget(rule: SloRule, rows: Sequence[Row], alerts: list[AlertRow], *,
               span: timedelta) -> SloBudget:
    """One SLO's month from its buckets (``span``: the part of the month that has
    passed, for the coverage)."""
    with_data = [r for r in rows if r.has_data]
    covered = sum(r.end - r.start for r in with_data)
    shortest = min(p.long for p in rule.pairs)
    seconds = span.total_seconds()
    return SloBudget(
        rule=rule.name, service=rule.service or rule.description, objective=rule.objective,
        good=sum(r.good for r in with_data), total=sum(r.total for r in with_data),
        coverage=min(1.0, covered / seconds) if seconds > 0 else 0.0,
        budget_fraction=rule.budget_fraction,
        worst=worst_burn(with_data, shortest, rule.budget_fraction,
                         min_events=rule.min_events),
        alerts=alerts)


_E = schema.episodes


def alerts_in(conn: sa.Connection, rules: Sequence[str], start: datetime, end: datetime
              ) -> dict[str, list[AlertRow]]:
    """The alert episodes of ``rules`` that fired in ``[start, end)``, oldest first."""
    if not rules:
        return {}
    query = (sa.select(_E.c.rule, _E.c.fired_at, _E.c.severity, _E.c.pages, _E.c.notifications,
                       _E.c.outcome, _E.c.outcome_by, _E.c.first_ack_at, _E.c.ack_seconds,
                       _E.c.resolve_seconds)
             .where(_E.c.rule.in_(list(rules)),
                    _E.c.day >= start.strftime("%Y-%m-%d"), _E.c.day < end.strftime("%Y-%m-%d"),
                    _E.c.fired_at >= start, _E.c.fired_at < end)
             .order_by(_E.c.fired_at, _E.c.fingerprint, _E.c.episode))
    out: dict[str, list[AlertRow]] = {}
    for r in conn.execute(query):
        out.setdefault(r.rule, []).append(AlertRow(
            fired_at=r.fired_at, severity=r.severity, pages=int(r.pages or 0),
            notifications=int(r.notifications or 0), outcome=r.outcome or "none",
            outcome_by=r.outcome_by or "", acked=r.first_ack_at is not None,
            ack_seconds=r.ack_seconds, resolve_seconds=r.resolve_seconds))
    return out


def build_report(rules: RulesFile, timeline: Timeline, month: str, *,
                 now: datetime | None = None) -> BudgetReport:
    """Every SLO of ``rules`` for ``month`` (a month still running: up to ``now``)."""
    start, end = month_bounds(month)
    now = (now or datetime.now(UTC)).astimezone(UTC)
    until = min(end, max(start, now))
    slos = rules.rules_of(SloRule)
    with timeline.read() as conn:
        alerts = alerts_in(conn, [r.name for r in slos], start, end)
        budgets = [slo_budget(rule, month_rows(conn, rule.name, start, end),
                              alerts.get(rule.name, []), span=until - start) for rule in slos]
    budgets.sort(key=lambda s: (-(s.spent if s.spent is not None else -1.0), s.rule))
    return BudgetReport(month, budgets)


# ----- formatting ------------------------------------------------------------------------


def fmt_pct(fraction: float | None, digits: int = 1) -> str:
    return "-" if fraction is None else f"{100 * fraction:.{digits}f} %"


def fmt_sli(sli: float | None) -> str:
    """Enough digits to tell 99.95 from 99.9 (three decimals of a percent)."""
    return "no events" if sli is None else f"{100 * sli:.3f} %"


def fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def fmt_burn(burn: Burn | None) -> str:
    if burn is None:
        return "-"
    return (f"{burn.rate:.1f}× over {format_duration(burn.window)} "
            f"(to {burn.ending:%Y-%m-%d %H:%M} UTC)")


def fmt_count(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def alert_cells(a: AlertRow) -> list[str]:
    return [f"{a.fired_at.astimezone(UTC):%Y-%m-%d %H:%M}", a.severity, str(a.pages),
            a.outcome + (f" ({a.outcome_by})" if a.outcome_by else ""),
            fmt_seconds(a.ack_seconds) if a.acked else "not acked",
            fmt_seconds(a.resolve_seconds) if a.resolve_seconds is not None else "open"]


SUMMARY_HEADER = ["SLO", "Objective", "SLI", "Events", "Budget spent", "Budget left",
                  "Worst burn", "Alerts"]
ALERT_HEADER = ["Fired (UTC)", "Severity", "Pages", "Outcome", "Time to ack",
                "Time to resolve"]


def summary_cells(s: SloBudget) -> list[str]:
    return [s.rule, f"{s.objective:g} %", fmt_sli(s.sli), fmt_count(s.total),
            fmt_pct(s.spent), fmt_pct(s.remaining), fmt_burn(s.worst),
            str(len(s.alerts)) if s.alerts else "no alerts"]


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def headline(report: BudgetReport) -> str:
    if not report.slos:
        return "No SLO is defined."
    over = report.over_budget
    alerts = sum(len(s.alerts) for s in report.slos)
    text = (f"{len(report.slos)} SLO(s); {len(over)} over budget"
            + (f" ({', '.join(s.rule for s in over)})" if over else "")
            + f"; {alerts} alert(s) raised.")
    return text


def to_markdown(report: BudgetReport) -> str:
    lines = [f"# SLO error budgets {report.month}", "", f"**Summary:** {headline(report)}", ""]
    if not report.slos:
        return "\n".join(lines)
    lines += ["| " + " | ".join(SUMMARY_HEADER) + " |", "|" + "---|" * len(SUMMARY_HEADER)]
    lines += ["| " + " | ".join(_md(c) for c in summary_cells(s)) + " |" for s in report.slos]
    for s in report.slos:
        lines += ["", f"## {_md(s.title)} ({_md(s.rule)})", ""]
        if not s.alerts:
            lines.append("No alerts this month.")
            continue
        lines += ["| " + " | ".join(ALERT_HEADER) + " |", "|" + "---|" * len(ALERT_HEADER)]
        lines += ["| " + " | ".join(_md(c) for c in alert_cells(a)) + " |" for a in s.alerts]
    lines += ["", "Budget of the month: (1 − objective) × the month's events. Outcome: what "
                  "the responder marked (none: nobody did)."]
    return "\n".join(lines)


# ----- HTML ------------------------------------------------------------------------------

_TEMPLATES = Environment(loader=PackageLoader("alert_jobs.families.slo", "templates"),
                         autoescape=True, undefined=StrictUndefined, finalize=escape,
                         trim_blocks=True, lstrip_blocks=True)


def _chart(report: BudgetReport) -> BarChart | None:
    """Budget spent per SLO, with the 100 % line (the whole budget)."""
    items = [(s.rule, 100 * s.spent,
              "#c0392b" if s.spent > 1 else "#e67e22" if s.spent > 0.5 else "#27ae60")
             for s in report.slos if s.spent is not None]
    return bar_chart("Error budget spent per SLO (%)", items, limit=100.0,
                     limit_label="100 %: the whole budget", fmt="{:.1f} %")


def to_html(report: BudgetReport) -> str:
    """The self-contained page; the template escapes every text (rule names, who marked)."""
    return _TEMPLATES.get_template("budget.html").render(
        title=f"SLO error budgets {report.month}", summary=headline(report),
        header=SUMMARY_HEADER, alert_header=ALERT_HEADER,
        rows=[(s.spent is not None and s.spent > 1.0, summary_cells(s)) for s in report.slos],
        slos=[(s.title, s.rule, [alert_cells(a) for a in s.alerts]) for s in report.slos],
        chart=_chart(report))


# ----- beside the alert review -------------------------------------------------------------


def report_dir(rules: RulesFile) -> Path:
    """Where the monthly alert review writes its HTML (``quality.report_dir``, else
    ``$DAGSTER_HOME/reports``): the budget report goes beside it. The quality section is
    read by name, as families never import each other."""
    configured = getattr(getattr(rules, "quality", None), "report_dir", "") or ""
    if configured:
        return Path(configured)
    return Path(os.environ.get("DAGSTER_HOME") or ".dagster_home") / "reports"


def html_path(directory: Path, month: str) -> Path:
    return directory / f"{FILE_PREFIX}{month}.html"


@dataclass(frozen=True)
class Written:
    report: BudgetReport
    markdown: str
    path: Path


def write_report(rules: RulesFile, timeline: Timeline, month: str, *,
                 out_dir: Path | None = None, now: datetime | None = None) -> Written:
    """Build the month's report and write its HTML (``slo-budget-YYYY-MM.html``)."""
    report = build_report(rules, timeline, month, now=now)
    directory = out_dir or report_dir(rules)
    directory.mkdir(parents=True, exist_ok=True)
    path = html_path(directory, month).resolve()
    path.write_text(to_html(report), encoding="utf-8")
    return Written(report, to_markdown(report), path)


def numbers(report: BudgetReport) -> dict[str, Any]:
    """Plain-number metadata (plots in the Dagster UI): totals, and per SLO its budget
    spent and SLI in percent, its alerts, and how much of the month its buckets cover
    (a month with gaps, or before the SLO existed, reports on fewer events)."""
    meta: dict[str, Any] = {
        "slos": len(report.slos), "slos_over_budget": len(report.over_budget),
        "alerts": sum(len(s.alerts) for s in report.slos),
        "pages": sum(a.pages for s in report.slos for a in s.alerts),
    }
    for s in report.slos:
        if s.spent is not None:
            meta[f"{s.rule}_budget_spent_pct"] = round(100 * s.spent, 3)
        if s.sli is not None:
            meta[f"{s.rule}_sli_pct"] = round(100 * s.sli, 4)
        meta[f"{s.rule}_alerts"] = len(s.alerts)
        meta[f"{s.rule}_coverage_pct"] = round(100 * s.coverage, 2)  # of the month so far
    return meta
