"""The guide's monthly review questions, answered from the month's incident records.

The python alerting guide's review meeting asks, for every alert that fired: was it
actionable, was the runbook sufficient? Then: delete alerts under 50 % actionable,
improve the runbooks of alerts that took over 30 minutes to resolve, add alerts for
incidents that had none. This module turns the month's numbers
(:class:`~alert_jobs.families.quality.check.QualityRow`), incident records
(:class:`~alert_jobs.store.incidents.Incident`) and threshold backtests into those
answers, one sentence each, so the Markdown, the HTML page, the message and the Dagster
metadata say the same thing. Pure: :mod:`alert_jobs.families.quality.review` reads.

* **Runbook sufficiency** per rule: the answers to "was the runbook sufficient?" on the
  records of the rule's episodes that fired in the month, and the share of "no".
* **Improve the runbook** when the median time to resolve is over ``quality.max_resolve``,
  quoting what responders said was missing (deduplicated, newest first, a few).
* **Tune or delete** under ``quality.min_actionable``, with the backtested threshold that
  would have kept the actionable episodes, or why none is suggested.
* **Add an alert** for each incident no rule caught, beside the rules *near* it: rules
  whose labels (in the rules file, or on their alerts) share a ``key=value`` with the
  incident's, most shared first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, timedelta

from alert_jobs.core.formatting import fmt_number
from alert_jobs.families.quality.backtest import ThresholdChoice
from alert_jobs.families.quality.check import QualityRow, fmt_seconds
from alert_jobs.store.incidents import Incident, runbook_answers

#: What responders said was missing, quoted per rule (newest first).
MISSING_QUOTED = 3
#: Rules named beside an incident without an alert.
NEAR_RULES = 3
#: Label keys every alert has: sharing them says nothing about being near.
IGNORED_LABELS = frozenset({"alertname", "severity"})

IMPROVE_RUNBOOK, TUNE_OR_DELETE, ADD_ALERT = "improve_runbook", "tune_or_delete", "add_alert"


@dataclass(frozen=True)
class RunbookAnswers:
    """One rule's answers to "was the runbook sufficient?" in the month."""

    answers: int
    no: int
    missing: tuple[str, ...]  # what responders said was missing, newest first, once each

    @property
    def share_no(self) -> float | None:
        return self.no / self.answers if self.answers else None

    def text(self) -> str:
        """``-`` (nobody answered) or ``1 of 3 (33%)``: the "no" answers."""
        if not self.answers:
            return "-"
        return f"{self.no} of {self.answers} ({self.no / self.answers:.0%})"


@dataclass(frozen=True)
class Advice:
    """One recommendation: ``kind`` (improve_runbook | tune_or_delete | add_alert), what it
    is about (a rule, or ``incident #7``) and the sentence the review shows."""

    kind: str
    subject: str
    text: str


@dataclass(frozen=True)
class ThresholdFinding:
    """A rule's backtested threshold, or why none is suggested (``reason``)."""

    choice: ThresholdChoice | None
    reason: str = ""

    def text(self) -> str:
        c = self.choice
        if c is None:
            return f"no threshold suggested: {self.reason}"
        r = c.result
        return (f"threshold {c.key} {fmt_number(c.current)} → {fmt_number(c.value)} would "
                f"have kept {r.actionable_caught} of {r.actionable} actionable episodes and "
                f"dropped {r.noisy_dropped} of {r.noisy} noisy ones")


def runbook_by_rule(incidents: Iterable[Incident]) -> dict[str, RunbookAnswers]:
    """Per rule, the answers on its episodes' records (records without a rule are left
    out: they are incidents no alert caught)."""
    by_rule: dict[str, list[Incident]] = {}
    for incident in incidents:
        if incident.rule is not None:
            by_rule.setdefault(incident.rule, []).append(incident)
    out = {}
    for rule, records in by_rule.items():
        answers, no = runbook_answers(records)
        out[rule] = RunbookAnswers(answers, no, missing_texts(records))
    return out


def missing_texts(incidents: Iterable[Incident], limit: int = MISSING_QUOTED
                  ) -> tuple[str, ...]:
    """What responders said the runbook was missing: newest incident first, each text
    once (compared without case and surrounding space), at most ``limit``."""
    seen: dict[str, str] = {}
    for incident in sorted(incidents, key=lambda i: (i.started_at, i.id), reverse=True):
        text = (incident.runbook_missing or "").strip()
        if text and text.casefold() not in seen:
            seen[text.casefold()] = text
    return tuple(seen.values())[:limit]


def improve_runbook(row: QualityRow, answers: RunbookAnswers | None,
                    max_resolve: timedelta) -> Advice | None:
    """"improve the runbook" when the rule's *median* time to resolve (the one the table
    shows and :func:`~alert_jobs.families.quality.check.recommend` judges) is over
    ``max_resolve``; None otherwise."""
    limit = max_resolve.total_seconds()
    if row.resolve_p50 is None or row.resolve_p50 <= limit:
        return None
    parts = [f"{row.rule}: median time to resolve {fmt_seconds(row.resolve_p50)} "
             f"(over {fmt_seconds(limit)})"]
    if answers is None or not answers.answers:
        parts.append("no runbook answers this month")
    else:
        parts.append(f"runbook not sufficient in {answers.no} of {answers.answers} answers")
    if answers is not None and answers.missing:
        parts.append("missing: " + "; ".join(f'"{m}"' for m in answers.missing))
    else:
        parts.append("nobody said what was missing")
    return Advice(IMPROVE_RUNBOOK, row.rule, "; ".join(parts))


def tune_or_delete(row: QualityRow, finding: ThresholdFinding,
                   min_actionable: float) -> Advice | None:
    """"tune or delete" when fewer than ``min_actionable`` of the rule's judged episodes
    were actionable, with the backtested threshold (or why there is none)."""
    rate = row.actionable_rate
    if rate is None or rate >= min_actionable:
        return None
    return Advice(TUNE_OR_DELETE, row.rule,
                  f"{row.rule}: {rate:.0%} actionable ({row.actionable} of {row.judged}, "
                  f"under {min_actionable:.0%}); {finding.text()}")


def near_rules(labels: Mapping[str, str], rule_labels: Mapping[str, Iterable[tuple[str, str]]],
               limit: int = NEAR_RULES) -> list[tuple[str, list[str]]]:
    """The rules sharing a ``key=value`` with ``labels`` (``alertname`` and ``severity``
    aside), most shared first, then by name: ``[(rule, ["service=checkout", …]), …]``."""
    wanted = {(k, v) for k, v in labels.items() if k not in IGNORED_LABELS}
    found = []
    for rule, pairs in rule_labels.items():
        shared = sorted(f"{k}={v}" for k, v in wanted & set(pairs))
        if shared:
            found.append((rule, shared))
    found.sort(key=lambda rs: (-len(rs[1]), rs[0]))
    return found[:limit]


def add_alert(incident: Incident,
              rule_labels: Mapping[str, Iterable[tuple[str, str]]]) -> Advice:
    """"add an alert" for an incident no rule caught, beside the rules near it."""
    when = incident.started_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    about = [when]
    if incident.detected_by:
        about.append(f"detected by {incident.detected_by}")
    if incident.labels:
        about.append("labels " + ", ".join(f"{k}={v}" for k, v in
                                            sorted(incident.labels.items())))
    near = near_rules(incident.labels, rule_labels)
    beside = ("near: " + ", ".join(f"{rule} ({', '.join(shared)})" for rule, shared in near)
              if near else "no rule shares a label with it")
    return Advice(ADD_ALERT, f"incident #{incident.id}",
                  f'incident #{incident.id} "{incident.title}" ({"; ".join(about)}): add an '
                  f"alert; {beside}")


def advice_for(rows: Sequence[QualityRow], runbook: Mapping[str, RunbookAnswers],
               findings: Mapping[str, ThresholdFinding], without_alert: Sequence[Incident],
               rule_labels: Mapping[str, Iterable[tuple[str, str]]], *,
               min_actionable: float, max_resolve: timedelta) -> list[Advice]:
    """Every recommendation, grouped by kind: runbooks, then tuning (both in the order of
    ``rows``), then incidents without an alert (in the given order)."""
    improve = [improve_runbook(r, runbook.get(r.rule), max_resolve) for r in rows]
    tune = [tune_or_delete(r, findings[r.rule], min_actionable) for r in rows
            if r.rule in findings]
    return [*(a for a in improve if a), *(a for a in tune if a),
            *(add_alert(i, rule_labels) for i in without_alert)]


def needs_threshold(row: QualityRow, min_actionable: float) -> bool:
    """Whether the rule is under ``min_actionable`` (so a threshold is worth backtesting)."""
    return row.actionable_rate is not None and row.actionable_rate < min_actionable
