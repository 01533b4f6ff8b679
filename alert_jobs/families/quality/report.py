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
from alert_jobs.families.quality.questions import (
    ADD_ALERT,
    IMPROVE_RUNBOOK,
    TUNE_OR_DELETE,
    Advice,
    RunbookAnswers,
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
    #: Per rule, the answers to "was the runbook sufficient?" on its incident records.
    runbook: dict[str, RunbookAnswers] = field(default_factory=dict)
    #: The guide's recommendations, one sentence each (:mod:`.questions`).
    advice: list[Advice] = field(default_factory=list)

    @property
    def to_act_on(self) -> list[tuple[QualityRow, Recommendation]]:
        return [(r, rec) for r, rec in self.rows if rec.action not in ("keep", "wait")]

    def advice_of(self, kind: str) -> list[Advice]:
        return [a for a in self.advice if a.kind == kind]

    def counts(self) -> dict[str, int]:
        """Plain numbers for Dagster metadata: rules with a "no" to "was the runbook
        sufficient?", and how many of each recommendation."""
        return {
            "runbook_answers": sum(a.answers for a in self.runbook.values()),
            "runbook_no_answers": sum(a.no for a in self.runbook.values()),
            "rules_runbook_insufficient": sum(1 for a in self.runbook.values() if a.no),
            "rules_improve_runbook": len(self.advice_of(IMPROVE_RUNBOOK)),
            "rules_tune_or_delete": len(self.advice_of(TUNE_OR_DELETE)),
            "incidents_without_alert": len(self.advice_of(ADD_ALERT)),
        }


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
           "Unattended", "Flaps", "Ack p50", "Resolve p50", "Resolve p90",
           "Runbook insufficient", "Recommendation"]
_NO_ANSWERS = RunbookAnswers(0, 0, ())

#: The guide's recommendations, each under its heading (Markdown, HTML, message).
SECTIONS = ((IMPROVE_RUNBOOK, "Improve the runbook"), (TUNE_OR_DELETE, "Tune or delete"),
            (ADD_ALERT, "Add an alert (incidents without one)"))


def _cells(row: QualityRow, rec: Recommendation, runbook: RunbookAnswers) -> list[str]:
    return [row.rule, str(row.fired), str(row.pages),
            f"{fmt_rate(row.actionable_rate)} ({row.actionable})", str(row.false_positive),
            str(row.noise), str(row.duplicates), str(row.unattended), str(row.flaps),
            fmt_seconds(row.ack_p50), fmt_seconds(row.resolve_p50),
            fmt_seconds(row.resolve_p90), runbook.text(), rec.text]


def _table(review: Review) -> list[tuple[QualityRow, Recommendation, list[str]]]:
    return [(row, rec, _cells(row, rec, review.runbook.get(row.rule, _NO_ANSWERS)))
            for row, rec in review.rows]


def _sections(review: Review) -> list[tuple[str, list[str]]]:
    """The recommendations' headings and sentences, leaving out empty ones."""
    found = [(title, [a.text for a in review.advice_of(kind)]) for kind, title in SECTIONS]
    return [(title, lines) for title, lines in found if lines]


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(review: Review) -> str:
    lines = [f"# Alert review {review.month}", "", f"**Overall:** {review.overall.text()}", ""]
    if not review.rows:
        return "\n".join([*lines, "No alert fired this month.", *_md_advice(review),
                          *_md_drills(review)])
    act = review.to_act_on
    lines.append(f"**To act on:** {len(act)} of {len(review.rows)} rule(s)." if act
                 else "**To act on:** nothing; every rule that fired is worth keeping.")
    lines += ["", "| " + " | ".join(_HEADER) + " |", "|" + "---|" * len(_HEADER)]
    for _, _, cells in _table(review):
        lines.append("| " + " | ".join(_md_escape(c) for c in cells) + " |")
    lines += _md_advice(review)
    if review.tuning:
        lines += ["", "**Baseline widths** (backtested over the month):", ""]
        lines += [f"- {_md_escape(line)}" for line in review.tuning]
    lines += _md_drills(review)
    lines += ["", f"Rules: under {review.min_actionable:.0%} actionable → tune or delete; "
                  f"median time to resolve over {fmt_seconds(review.max_resolve.total_seconds())}"
                  " → improve the runbook; target: more than "
                  f"{review.overall.target:.0%} of all alerts actionable. \"Runbook "
                  "insufficient\": the \"no\" answers to \"was the runbook sufficient?\" on "
                  "the rule's incident records."]
    return "\n".join(lines)


def markdown_advice(review: Review) -> str:
    """The recommendations alone (the monthly asset's ``recommendations`` metadata)."""
    return "\n".join(_md_advice(review)).strip() or "Nothing to improve, tune or add."


def _md_advice(review: Review) -> list[str]:
    lines: list[str] = []
    for title, texts in _sections(review):
        lines += ["", f"**{title}:**", "", *[f"- {_md_escape(t)}" for t in texts]]
    return lines


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
    for title, texts in _sections(review):
        lines += [f"{title}:", *[f"- {t}" for t in texts]]
    lines += [f"- fire drill: {line}" for line in review.drills if "FAILED" in line]
    if not review.to_act_on and not review.tuning and not review.advice:
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
    table = [(rec.action not in ("keep", "wait"), cells) for _, rec, cells in _table(review)]
    return _TEMPLATES.get_template("review.html").render(
        title=f"Alert review {review.month}", overall=review.overall.text(), header=_HEADER,
        rows=table, charts=[fired, rates, resolve], tuning=review.tuning,
        drills=review.drills, advice=_sections(review))
