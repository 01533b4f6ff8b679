"""The monthly alert review, as Markdown (Dagster metadata) and as one self-contained HTML file.

The HTML has no external script, style or font: charts are inline SVG, so the file
can be mailed, archived or opened offline. Its markup is the jinja2 template
``templates/review.html``; this module computes the charts' geometry, and the template
engine escapes every rule name and text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from jinja2 import Environment, PackageLoader, StrictUndefined

from alert_jobs.families.quality.check import (
    MAX_RESOLVE,
    MIN_ACTIONABLE,
    TARGET_ACTIONABLE,
    Overall,
    QualityRow,
    Recommendation,
    fmt_rate,
    fmt_seconds,
    overall,
    recommend,
)
from alert_jobs.notify.charts import bar_chart
from alert_jobs.notify.html import escape


@dataclass(frozen=True)
class Review:
    """One month's review: per-rule rows (worst first) with their recommendations."""

    month: str  # YYYY-MM
    rows: list[tuple[QualityRow, Recommendation]]
    overall: Overall
    min_actionable: float = MIN_ACTIONABLE
    max_resolve: timedelta = MAX_RESOLVE
    #: Baseline widths the month's backtests suggest (one line per rule).
    tuning: list[str] = field(default_factory=list)
    #: Each rule's last fire drill ("rule: last drill 3 days ago, paged in 4.2 s");
    #: drills themselves are never among ``rows``.
    drills: list[str] = field(default_factory=list)

    @property
    def to_act_on(self) -> list[tuple[QualityRow, Recommendation]]:
        return [(r, rec) for r, rec in self.rows if rec.action not in ("keep", "wait")]


def build_review(month: str, rows: list[QualityRow], *, target: float = TARGET_ACTIONABLE,
                 min_actionable: float = MIN_ACTIONABLE,
                 max_resolve: timedelta = MAX_RESOLVE) -> Review:
    """``rows`` grouped by rule (one per rule). Sorted: least actionable, then loudest, first."""
    judged = [(r, recommend(r, min_actionable=min_actionable, max_resolve=max_resolve))
              for r in rows if r.fired]
    judged.sort(key=lambda x: (x[0].actionable_rate if x[0].actionable_rate is not None
                               else 2.0, -x[0].fired, x[0].rule))
    return Review(month, judged, overall(rows, target), min_actionable, max_resolve)


_HEADER = ["Rule", "Fired", "Pages", "Actionable", "False pos.", "Noise", "Dup.",
           "Unattended", "Flaps", "Ack p50", "Resolve p50", "Resolve p90", "Recommendation"]


def _cells(row: QualityRow, rec: Recommendation) -> list[str]:
    return [row.rule, str(row.fired), str(row.pages),
            f"{fmt_rate(row.actionable_rate)} ({row.actionable})", str(row.false_positive),
            str(row.noise), str(row.duplicates), str(row.unattended), str(row.flaps),
            fmt_seconds(row.ack_p50), fmt_seconds(row.resolve_p50),
            fmt_seconds(row.resolve_p90), rec.text]


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(review: Review) -> str:
    lines = [f"# Alert review {review.month}", "", f"**Overall:** {review.overall.text()}", ""]
    if not review.rows:
        return "\n".join([*lines, "No alert fired this month.", *_md_drills(review)])
    act = review.to_act_on
    lines.append(f"**To act on:** {len(act)} of {len(review.rows)} rule(s)." if act
                 else "**To act on:** nothing; every rule that fired is worth keeping.")
    lines += ["", "| " + " | ".join(_HEADER) + " |", "|" + "---|" * len(_HEADER)]
    for row, rec in review.rows:
        lines.append("| " + " | ".join(_md_escape(c) for c in _cells(row, rec)) + " |")
    if review.tuning:
        lines += ["", "**Baseline widths** (backtested over the month):", ""]
        lines += [f"- {_md_escape(line)}" for line in review.tuning]
    lines += _md_drills(review)
    lines += ["", f"Rules: under {review.min_actionable:.0%} actionable → tune or delete; "
                  f"median time to resolve over {fmt_seconds(review.max_resolve.total_seconds())}"
                  " → improve the runbook; target: more than "
                  f"{review.overall.target:.0%} of all alerts actionable."]
    return "\n".join(lines)


def _md_drills(review: Review) -> list[str]:
    if not review.drills:
        return []
    return ["", "**Fire drills** (not counted in the rates above):", "",
            *[f"- {_md_escape(line)}" for line in review.drills]]


def to_text(review: Review, html_path: str = "") -> str:
    """The short summary sent to the review receiver."""
    lines = [review.overall.text()]
    for row, rec in review.to_act_on[:20]:
        lines.append(f"- {row.rule}: fired {row.fired}x; {rec.text}")
    if len(review.to_act_on) > 20:
        lines.append(f"- … and {len(review.to_act_on) - 20} more")
    lines += [f"- {line}" for line in review.tuning]
    lines += [f"- fire drill: {line}" for line in review.drills if "FAILED" in line]
    if not review.to_act_on and not review.tuning:
        lines.append("Nothing to act on." if review.rows else "No alert fired this month.")
    if html_path:
        lines.append(f"Full report: {html_path}")
    return "\n".join(lines)


# ----- HTML -------------------------------------------------------------------------



_TEMPLATES = Environment(loader=PackageLoader("alert_jobs.families.quality", "templates"),
                         autoescape=True, undefined=StrictUndefined, finalize=escape,
                         trim_blocks=True, lstrip_blocks=True)


def to_html(review: Review) -> str:
    """The self-contained page (``templates/review.html``); the template escapes every text."""
    rows = review.rows
    fired = bar_chart("Alerts fired per rule", [(r.rule, float(r.fired), "#4a78c2")
                                                 for r, _ in rows], limit=None, limit_label="")
    rates = bar_chart(
        "Actionable rate per rule (%)",
        [(r.rule, 100.0 * (r.actionable_rate or 0.0),
          "#c0392b" if (r.actionable_rate or 0.0) < review.min_actionable else "#27ae60")
         for r, _ in rows if r.actionable_rate is not None],
        limit=100.0 * review.min_actionable,
        limit_label=f"{review.min_actionable:.0%}: tune or delete below")
    limit_min = review.max_resolve.total_seconds() / 60
    resolve = bar_chart(
        "Median time to resolve (minutes)",
        [(r.rule, r.resolve_p50 / 60, "#e67e22" if r.resolve_p50 / 60 > limit_min else "#7f8c8d")
         for r, _ in rows if r.resolve_p50 is not None],
        limit=limit_min, limit_label=f"{limit_min:.0f} min: improve the runbook above",
        fmt="{:.1f}")
    table = [(rec.action not in ("keep", "wait"), _cells(row, rec)) for row, rec in rows]
    return _TEMPLATES.get_template("review.html").render(
        title=f"Alert review {review.month}", overall=review.overall.text(), header=_HEADER,
        rows=table, charts=[fired, rates, resolve], tuning=review.tuning,
        drills=review.drills)
