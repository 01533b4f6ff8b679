"""An SLO's state in words, from its stored counts only (``alert-jobs slo status``)."""

from __future__ import annotations

from datetime import datetime

from alert_jobs.core.durations import short_duration
from alert_jobs.core.formatting import fmt_number
from alert_jobs.families.slo import check
from alert_jobs.families.slo.config import SloRule
from alert_jobs.families.slo.run import floor_to, subject
from alert_jobs.families.slo.store import SloBucketStore


def _pct(fraction: float | None, digits: int = 3) -> str:
    return "-" if fraction is None else f"{fraction * 100:.{digits}f}".rstrip("0").rstrip(".")


def _burn(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}".rstrip("0").rstrip(".") + "×"


def status_lines(rule: SloRule, store: SloBucketStore, *, now: datetime) -> list[str]:
    """Objective, SLI over the period, budget left, burn per window, the firing pair."""
    head = f"{rule.name}: {subject(rule)}, SLO {rule.objective:g} % over " \
           f"{short_duration(rule.period)}"
    extent = store.extent(rule.name)
    if extent is None:
        return [head, "  nothing stored yet: the first run reads its history"]
    end = floor_to(now, rule.bucket)
    counts = store.window_counts(rule.name, check.windows_of(rule), end=end)
    report = check.evaluate(rule, counts)
    period = counts[rule.period]
    lines = [head,
             f"  SLI {_pct(report.sli)} % over the period ({fmt_number(round(period.total))} "
             f"events, {period.coverage * 100:.0f} % of the period with data)",
             f"  error budget left: {_pct(report.budget_remaining, 1)} %"]
    lines.append("  burn: " + ", ".join(
        f"{short_duration(span)} {_burn(report.burn.get(span))}"
        for span in sorted(report.burn)))
    for result in report.pairs:
        pair = result.pair
        state = ("FIRING" if result.firing else
                 {"gap": "not judged: a window lacks data",
                  "few_events": "not judged: too few events"}.get(result.reason, "ok"))
        lines.append(f"  {pair.label} {short_duration(pair.long)}/{short_duration(pair.short)}"
                     f" above {pair.factor:.4g}×: {_burn(result.long_burn)} / "
                     f"{_burn(result.short_burn)} → {state}")
    firing = report.firing
    lines.append("  firing: " + (f"{firing.pair.label} ({short_duration(firing.pair.long)}/"
                                 f"{short_duration(firing.pair.short)})" if firing else "none"))
    lines.append(f"  stored: {extent.first_start:%Y-%m-%d %H:%M} – "
                 f"{extent.last_end:%Y-%m-%d %H:%M} UTC")
    return lines
