"""Run the monthly review: roll the month up in SQL, write the HTML, tell the receiver.

Shared by the ``alert_quality_monthly`` asset and ``alert-jobs quality review``. The
message goes through the outbox like any notification (retries, delivery events),
with a dedup key per month and receiver, so re-running a month never sends it twice.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from alert_jobs.config import RulesFile
from alert_jobs.core.months import month_bounds
from alert_jobs.families.quality.config import QualityConfig
from alert_jobs.families.quality.report import Review, build_review, to_html, to_markdown, to_text
from alert_jobs.families.quality.rollup import quality_rows
from alert_jobs.notify.contract import AlertMessage, GroupMessage
from alert_jobs.store import Timeline, utcnow

REVIEW_RULE = "alert_quality_review"


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


def run_review(rules: RulesFile, timeline: Timeline, month: str, *, send: bool = True,
               out_dir: Path | None = None, run_id: str | None = None) -> ReviewResult:
    start, end = month_bounds(month)
    with timeline.read() as conn:
        rows = quality_rows(conn, start, end, by=("rule",))
    q = rules.section(QualityConfig)
    review = build_review(month, rows, target=q.target_actionable,
                          min_actionable=q.min_actionable, max_resolve=q.max_resolve)
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
