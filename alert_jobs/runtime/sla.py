"""How soon a rule's first notification must arrive: its notification SLA.

A rule may say (``sla: 3m``); otherwise the SLA is what the pipeline needs when
everything works, plus a minute of slack:

    for  +  evaluation interval  +  route group_wait  +  1 minute

``for`` (the condition must last that long), the evaluation interval (the longest gap
between two runs of the rule's cron: a condition can start just after a run),
``group_wait`` (the longest of the routes the rule's alert goes to). Fire drills and
the chaos test hold a rule to it (:func:`notify_sla`); a drill, which injects a bad
observation that fires at once, is held to the part of the SLA after the firing
decision (:func:`delivery_budget`).
"""

from __future__ import annotations

from datetime import timedelta

from alert_jobs.config import RuleBase, RulesFile
from alert_jobs.core.cron import longest_gap

SLACK = timedelta(minutes=1)


def evaluation_interval(rules: RulesFile, rule: RuleBase) -> timedelta:
    """The longest gap between consecutive runs of the rule's schedule (cron in its
    timezone)."""
    return longest_gap(rules.schedule_for(rule), rules.timezone_for(rule))


def group_wait(rules: RulesFile, rule: RuleBase) -> timedelta:
    """The longest ``group_wait`` of the routes the rule's alert goes to (with only its
    own labels: routes matching labels its check adds per instance are not seen)."""
    labels = {**rule.labels, "alertname": rule.name, "severity": str(rule.severity)}
    targets = rules.router().targets(labels, tuple(rule.receivers or ()))
    return max((t.group_wait for t in targets), default=timedelta(0))


def notify_sla(rules: RulesFile, rule: RuleBase) -> timedelta:
    """The rule's ``sla``, else ``for`` + evaluation interval + group_wait + 1 minute."""
    if rule.sla is not None:
        return rule.sla
    return rule.for_ + evaluation_interval(rules, rule) + group_wait(rules, rule) + SLACK


def delivery_budget(rules: RulesFile, rule: RuleBase) -> timedelta:
    """What a fire drill is held to: the SLA minus ``for`` and the evaluation interval,
    i.e. the time the path from a firing decision to the page may take (group_wait +
    1 minute by default). Zero when a rule's own ``sla`` is shorter than its ``for`` +
    interval: that SLA cannot be met, and every drill of the rule fails, saying why."""
    budget = notify_sla(rules, rule) - rule.for_ - evaluation_interval(rules, rule)
    return max(budget, timedelta(0))
