"""Run the monthly review: roll the month up in SQL, write the HTML, tell the receiver.

Beside the numbers it asks the guide's questions (:func:`guide_answers`): per rule the
runbook answers of its incident records, "improve the runbook" with what responders said
was missing, "tune or delete" with a backtested threshold
(:mod:`~alert_jobs.families.quality.tuning`), and "add an alert" for each incident no
rule caught, beside the rules that share its labels.

Shared by the ``alert_quality_monthly`` asset and ``alert-jobs quality review``. The
message goes through the outbox like any notification (retries, delivery events),
with a dedup key per month and receiver, so re-running a month never sends it twice.

For a rule with a learned baseline and noisy alerts, the review backtests a few widths
over the month (:data:`WIDTHS`, as ``alert-jobs rules backtest RULE --set width=W``
would) and suggests the one that keeps every actionable alert and drops the most noise:
"orders_last_hour: width 4 would have kept 3 of 3 actionable alerts and dropped 5 of 7
noisy ones (now 3)".
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from alert_jobs.config import RulesFile
from alert_jobs.core.months import month_bounds
from alert_jobs.families.quality.backtest import (
    BacktestResult,
    Change,
    backtest,
    best_width,
    effective,
    rejudged,
    width_advice,
)
from alert_jobs.families.quality.check import QualityRow
from alert_jobs.families.quality.config import QualityConfig
from alert_jobs.families.quality.drills import drill_lines
from alert_jobs.families.quality.questions import (
    Advice,
    RunbookAnswers,
    advice_for,
    needs_threshold,
    runbook_by_rule,
)
from alert_jobs.families.quality.report import Review, build_review, to_html, to_markdown, to_text
from alert_jobs.families.quality.rollup import quality_rows
from alert_jobs.families.quality.tuning import threshold_finding
from alert_jobs.notify.contract import AlertMessage, GroupMessage
from alert_jobs.runtime.family import Rejudge
from alert_jobs.store import Timeline, schema, utcnow

REVIEW_RULE = "alert_quality_review"

#: The baseline widths the review backtests for a rule with noisy alerts.
WIDTHS = (2.0, 3.0, 4.0, 5.0, 6.0)
#: At most this many incident records of each kind are read for one month.
INCIDENTS_READ = 10_000


def report_dir(rules: RulesFile) -> Path:
    report_dir = rules.section(QualityConfig).report_dir
    if report_dir:
        return Path(report_dir)
    return Path(os.environ.get("DAGSTER_HOME") or ".dagster_home") / "reports"


@dataclass(frozen=True)
class ReviewResult:
    review: Review
    markdown: str
    html_path: Path
    outbox_id: int | None  # None: no receiver configured, or already queued for this month


def monthly_review(rules: RulesFile, timeline: Timeline, month: str) -> Review:
    """One month's review from the timeline: the rows, width advice and fire drills.

    What the ``alert_quality_monthly`` asset, ``alert-jobs quality review`` and the
    served ``/quality/review`` page all show, computed in one place."""
    start, end = month_bounds(month)
    with timeline.read() as conn:
        rows = quality_rows(conn, start, end, by=("rule",))
    q = rules.section(QualityConfig)
    review = build_review(month, rows, target=q.target_actionable,
                          min_actionable=q.min_actionable, max_resolve=q.max_resolve)
    runbook, advice = guide_answers(rules, timeline, [r for r, _ in review.rows], start, end)
    return replace(review, tuning=width_suggestions(rules, timeline, rows, start, end),
                   drills=drill_lines(timeline, [r.name for r in rules.rules()]),
                   runbook=runbook, advice=advice)


def guide_answers(rules: RulesFile, timeline: Timeline, rows: list[QualityRow],
                  start: datetime, end: datetime
                  ) -> tuple[dict[str, RunbookAnswers], list[Advice]]:
    """The guide's questions for the month (:mod:`~alert_jobs.families.quality.questions`):
    per rule the runbook answers on the records of its episodes that fired in
    ``[start, end)``, and the recommendations — improve the runbook, tune or delete (with
    a backtested threshold), add an alert for each incident no rule caught."""
    q = rules.section(QualityConfig)
    with_alert = timeline.incidents.list(since=start, until=end, with_alert=True,
                                         limit=INCIDENTS_READ)
    runbook = runbook_by_rule(with_alert)
    findings = {r.rule: threshold_finding(rules, timeline, r, start, end)
                for r in rows if needs_threshold(r, q.min_actionable)}
    without = timeline.incidents.list(since=start, until=end, with_alert=False,
                                      limit=INCIDENTS_READ)
    labels = rule_labels(rules, timeline) if without else {}
    return runbook, advice_for(rows, runbook, findings, without, labels,
                               min_actionable=q.min_actionable, max_resolve=q.max_resolve)


def rule_labels(rules: RulesFile, timeline: Timeline) -> dict[str, set[tuple[str, str]]]:
    """Each rule of the rules file with every ``key=value`` it carries: its own
    ``labels:`` and those of its alert instances in the timeline (a query's group-by
    columns), one read of the alerts table."""
    out: dict[str, set[tuple[str, str]]] = {
        r.name: {(k, str(v)) for k, v in r.labels.items()} for r in rules.rules()}
    a = schema.alerts
    with timeline.read() as conn:
        for name, labels in conn.execute(sa.select(a.c.rule, a.c.labels)
                                         .where(a.c.rule.in_(list(out)))):
            out[name].update((k, str(v)) for k, v in (labels or {}).items())
    return out


def run_review(rules: RulesFile, timeline: Timeline, month: str, *, send: bool = True,
               out_dir: Path | None = None, run_id: str | None = None) -> ReviewResult:
    review = monthly_review(rules, timeline, month)
    q = rules.section(QualityConfig)
    directory = out_dir or report_dir(rules)
    directory.mkdir(parents=True, exist_ok=True)
    path = (directory / f"alert-review-{month}.html").resolve()
    page = to_html(review)
    path.write_text(page, encoding="utf-8")
    outbox_id = None
    if send and q.review_receiver:
        message = review_message(q.review_receiver, review, str(path), rules)
        message["attachments"] = [{"filename": path.name, "content_type": "text/html",
                                   "content": page}]
        outbox_id = timeline.outbox.enqueue(q.review_receiver, "review", message["dedup_key"],
                                            dict(message), rule=REVIEW_RULE, run_id=run_id)
    return ReviewResult(review, to_markdown(review), path, outbox_id)


def width_results(rules: RulesFile, timeline: Timeline, rule_name: str, start: datetime,
                  end: datetime, widths: tuple[float, ...] = WIDTHS
                  ) -> tuple[float, dict[float, BacktestResult]] | None:
    """Backtest each of ``widths`` for a baseline rule over ``[start, end)``: the rule's
    current width and the results; None when the rule has no baseline (its family cannot
    change ``width``, or says the rule has none)."""
    from alert_jobs.families.quality.stored import load_history, load_points
    from alert_jobs.runtime.evaluate import policy_for
    from alert_jobs.runtime.family import family_of

    try:
        rule = effective(rules, rules.rule(rule_name))
    except KeyError:
        return None  # the rule was deleted since
    family = family_of(rule)
    make = family.rejudge
    if make is None or "width" not in family.threshold_keys:
        return None
    try:
        current = make(rule, {})
        judges = {w: make(rule, {"width": f"{w:g}"}) for w in widths}
    except ValueError:
        return None  # not a baseline rule
    spec = getattr(getattr(rule, "expect", None), "baseline", None)
    now_width = float(getattr(spec, "width", 0.0))
    warm_up = max(current.history, *(j.history for j in judges.values()))
    evals, episodes = load_history(timeline, rule.name, start, end,
                                   warm_up_from=start - warm_up)
    points = load_points(timeline, rule.name, start - warm_up, end)
    base = replace(policy_for(rules, rule), enabled=True)
    results = {}
    for width in widths:
        current_judge = rejudged(rule.name, _maker(make, rule, {}), points)
        changed_judge = rejudged(rule.name, _maker(make, rule, {"width": f"{width:g}"}),
                                 points)
        results[width] = backtest(evals, episodes, base, Change(), current_judge=current_judge,
                                  changed_judge=changed_judge, end=end, since=start)
    return now_width, results


def _maker(make: Callable[[Any, Mapping[str, str]], Rejudge], rule: Any,
           sets: Mapping[str, str]) -> Callable[[], Rejudge]:
    return lambda: make(rule, sets)


def width_suggestions(rules: RulesFile, timeline: Timeline, rows: list[QualityRow],
                      start: datetime, end: datetime) -> list[str]:
    """One line per baseline rule with noisy alerts whose width could be better."""
    lines = []
    for row in rows:
        if row.noisy <= 0:
            continue
        found = width_results(rules, timeline, row.rule, start, end)
        if found is None:
            continue
        now_width, results = found
        if not any(r.replayed_current for r in results.values()):
            continue  # replayed as it is, the rule fires nothing: its history (a baseline
            # still learning, alerts from before it had one) cannot say what a width would do
        best = best_width(results)
        if best is not None and best != now_width:
            lines.append(width_advice(row.rule, best, results[best], now_width))
    return lines


def review_message(receiver: str, review: Review, html_path: str,
                   rules: RulesFile) -> GroupMessage:
    """The review as a one-alert group message every receiver can render (info severity).

    Email also gets the HTML report attached (see :func:`run_review`); chat receivers
    get the summary and the report's path.
    """
    now = utcnow()
    labels = {"alertname": REVIEW_RULE, "severity": "info", "month": review.month}
    alert: AlertMessage = {
        "status": "firing", "rule": REVIEW_RULE, "fingerprint": f"review-{review.month}",
        "severity": "info", "labels": labels,
        "summary": f"Monthly alert review {review.month}: {review.overall.text()}",
        "why": to_text(review, html_path),
        "runbook_url": "", "dashboard_url": "", "run_url": "",
        "starts_at": now.isoformat(), "ends_at": None, "notification_reason": "review",
        "actions": {},
    }
    return {"receiver": receiver, "group_key": f"review:{receiver}", "group_labels": {},
            "common_labels": labels, "status": "firing", "notification_reason": "review",
            "dedup_key": f"alert-review:{review.month}", "alerts": [alert],
            "truncated_alerts": 0, "dagster_url": rules.defaults.dagster_url}
