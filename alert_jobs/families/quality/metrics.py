"""The alerting system's own quality in the Prometheus text format (0.0.4), which
``alert-jobs serve`` answers on ``GET /metrics`` (:mod:`alert_jobs.families.quality.http`).

The guide's instruments, built from ``alert_episodes`` with two aggregate queries
(no new dependency, no in-process state: every scrape reads the timeline, so any
number of ``serve`` processes agree):

* ``alerts_total{name,severity}``: episodes that fired;
* ``alerts_actionable_total{name,severity}``: of those, actionable (see
  :mod:`alert_jobs.families.quality.check`; an outcome changed later can lower it, which
  Prometheus treats as a counter reset);
* ``alert_ack_seconds`` / ``alert_resolve_seconds``: histograms of time to ack (from
  the first notification) and time to resolve (from firing).
"""

from __future__ import annotations

import sqlalchemy as sa

from alert_jobs.store import Timeline, schema

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BUCKETS = (60.0, 300.0, 900.0, 1800.0, 3600.0, 14400.0, 86400.0)
HISTOGRAMS = {
    "alert_ack_seconds": ("ack_seconds", "Time to acknowledge alert"),
    "alert_resolve_seconds": ("resolve_seconds", "Time from fire to resolve"),
}


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def render(timeline: Timeline) -> str:
    """The whole exposition text, from two queries."""
    t = schema.episodes
    actionable = sa.or_(t.c.outcome == "actionable",
                        sa.and_(t.c.outcome.is_(None), t.c.ack_seconds.is_not(None)))
    counters = (sa.select(t.c.rule, t.c.severity, sa.func.count().label("fired"),
                          sa.func.sum(sa.case((actionable, 1), else_=0)).label("actionable"))
                .group_by(t.c.rule, t.c.severity).order_by(t.c.rule, t.c.severity))
    cols = []
    for name, (column, _help) in HISTOGRAMS.items():
        value = t.c[column]
        for i, le in enumerate(BUCKETS):
            cols.append(sa.func.sum(sa.case((value <= le, 1), else_=0)).label(f"{name}_{i}"))
        cols.append(sa.func.count(value).label(f"{name}_count"))
        cols.append(sa.func.sum(value).label(f"{name}_sum"))
    with timeline.read() as conn:
        counter_rows = conn.execute(counters).all()
        hist = conn.execute(sa.select(*cols)).one()._mapping

    lines = ["# HELP alerts_total Total alerts fired", "# TYPE alerts_total counter"]
    for r in counter_rows:
        labels = f'name="{escape_label(r.rule)}",severity="{escape_label(r.severity)}"'
        lines.append(f"alerts_total{{{labels}}} {int(r.fired)}")
    lines += ["# HELP alerts_actionable_total Alerts that required action",
              "# TYPE alerts_actionable_total counter"]
    for r in counter_rows:
        labels = f'name="{escape_label(r.rule)}",severity="{escape_label(r.severity)}"'
        lines.append(f"alerts_actionable_total{{{labels}}} {int(r.actionable or 0)}")
    for name, (_column, help_text) in HISTOGRAMS.items():
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
        for i, le in enumerate(BUCKETS):
            lines.append(f'{name}_bucket{{le="{_num(le)}"}} {int(hist[f"{name}_{i}"] or 0)}')
        count = int(hist[f"{name}_count"] or 0)
        lines.append(f'{name}_bucket{{le="+Inf"}} {count}')
        lines.append(f"{name}_sum {_num(float(hist[f'{name}_sum'] or 0.0))}")
        lines.append(f"{name}_count {count}")
    return "\n".join(lines) + "\n"
