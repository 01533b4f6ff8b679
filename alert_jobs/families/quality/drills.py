"""Fire drills in the quality reports: "last drill 3 days ago, paged in 4.2 s".

A drill's alert never becomes an episode (``alert_jobs.store.episodes``), so the rates,
rollups and the review's rule rows never count it; this is where drills *are* shown,
per rule, from the ``drill_finished`` events (:func:`alert_jobs.runtime.drill.last_drills`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from alert_jobs.runtime.drill import drill_text, last_drills
from alert_jobs.store import Timeline, utcnow


def drill_lines(timeline: Timeline, rules: Iterable[str], *, now: datetime | None = None,
                include_drilled: bool = True) -> list[str]:
    """``rule: last drill 3 days ago, paged in 4.2 s`` (or ``never drilled``), one line
    per rule in ``rules`` (and, with ``include_drilled``, per other rule drilled), sorted."""
    drills = last_drills(timeline)
    names = set(rules) | (set(drills) if include_drilled else set())
    now = now or utcnow()
    return [f"{name}: {drill_text(drills, name, now)}" for name in sorted(names)]
