"""Alert quality: the rolled-up numbers of one rule, and what the guide says to do about them.

Pure: the rows come from :mod:`alert_jobs.families.quality.rollup` (SQL), the advice from the
alerting patterns guide's monthly review:

* under 50 % actionable → tune or delete the rule;
* time to resolve over 30 minutes → improve the runbook;
* overall, more than 80 % of alerts should be actionable.

How an episode counts (README "Alert quality"): an explicit outcome wins; an ack with
no outcome is *actionable* (a person acted); an episode that resolved with no ack and
no outcome is *unattended* and not actionable; one still open with neither is *open*
and left out of the rates until it is judged or resolves.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

TARGET_ACTIONABLE = 0.8
MIN_ACTIONABLE = 0.5
MAX_RESOLVE = timedelta(minutes=30)


@dataclass(frozen=True)
class QualityRow:
    """One group of episodes (a rule, maybe a severity, maybe a day) and its measures."""

    rule: str
    severity: str | None = None
    day: str | None = None
    fired: int = 0
    notifications: int = 0
    pages: int = 0
    actionable: int = 0
    false_positive: int = 0
    noise: int = 0
    duplicates: int = 0
    unattended: int = 0
    open: int = 0
    flaps: int = 0
    ack_p50: float | None = None
    ack_p90: float | None = None
    response_p50: float | None = None
    response_p90: float | None = None
    resolve_p50: float | None = None
    resolve_p90: float | None = None

    @property
    def judged(self) -> int:
        """Episodes whose worth is known: everything but the still-open, unjudged ones."""
        return self.fired - self.open

    @property
    def actionable_rate(self) -> float | None:
        return self.actionable / self.judged if self.judged else None

    @property
    def false_positive_rate(self) -> float | None:
        return self.false_positive / self.judged if self.judged else None

    @property
    def noisy(self) -> int:
        """Judged and not actionable: false positives, noise, duplicates, unattended."""
        return self.judged - self.actionable

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["actionable_rate"] = self.actionable_rate
        data["false_positive_rate"] = self.false_positive_rate
        return data


@dataclass(frozen=True)
class Recommendation:
    action: str  # keep | tune_or_delete | improve_runbook | tune_or_delete+improve_runbook | wait
    text: str


def recommend(row: QualityRow, *, min_actionable: float = MIN_ACTIONABLE,
              max_resolve: timedelta = MAX_RESOLVE) -> Recommendation:
    """The guide's rules applied to one rule's month."""
    rate = row.actionable_rate
    if rate is None:
        return Recommendation("wait", "no episode judged yet (all still open)")
    actions, reasons = [], []
    if rate < min_actionable:
        actions.append("tune_or_delete")
        reasons.append(f"only {rate:.0%} actionable ({row.actionable} of {row.judged}; "
                       f"under {min_actionable:.0%}): tune the threshold or delete the rule")
    limit = max_resolve.total_seconds()
    if row.resolve_p50 is not None and row.resolve_p50 > limit:
        actions.append("improve_runbook")
        reasons.append(f"median time to resolve {_minutes(row.resolve_p50)} (over "
                       f"{_minutes(limit)}): improve the runbook")
    if not actions:
        return Recommendation("keep", f"{rate:.0%} actionable; keep")
    return Recommendation("+".join(actions), "; ".join(reasons))


@dataclass(frozen=True)
class Overall:
    fired: int
    judged: int
    actionable: int
    target: float

    @property
    def rate(self) -> float | None:
        return self.actionable / self.judged if self.judged else None

    @property
    def meets_target(self) -> bool | None:
        return None if self.rate is None else self.rate > self.target

    def text(self) -> str:
        if self.rate is None:
            return f"{self.fired} alert(s), none judged yet; target above {self.target:.0%}"
        verdict = "meets" if self.meets_target else "below"
        return (f"{self.rate:.0%} of {self.judged} judged alert(s) actionable: {verdict} the "
                f"target of more than {self.target:.0%}")


def overall(rows: list[QualityRow], target: float = TARGET_ACTIONABLE) -> Overall:
    return Overall(sum(r.fired for r in rows), sum(r.judged for r in rows),
                   sum(r.actionable for r in rows), target)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def fmt_seconds(seconds: float | None) -> str:
    """``-``, ``45 s``, ``12 min``, ``3.5 h`` for tables."""
    if seconds is None:
        return "-"
    if seconds < 90:
        return f"{seconds:.0f} s"
    return _minutes(seconds)


def fmt_rate(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.0%}"
