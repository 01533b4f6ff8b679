"""The same alert in each audience's words (the ML guide's three columns).

A rule's ``annotations.audience_text`` gives, per audience (engineering, data_science,
business), its text, the numbers it cares about and its dashboard. At evaluation every
audience's view is put in the message (:func:`audience_views`, one dict per audience,
plain JSON for the outbox); at send time each receiver shows its own audience's view
(:func:`for_audience`, from :meth:`alert_jobs.notify.base.Receiver.prepare`). A
receiver without an audience keeps what the rule's own ``audience`` chose at evaluation.
"""

from __future__ import annotations

from typing import Any

from alert_jobs.config.rules import AUDIENCES, Annotations
from alert_jobs.core.formatting import fmt_number
from alert_jobs.core.model import Observation
from alert_jobs.notify.contract import AlertMessage, GroupMessage


def metric_values(obs: Observation, names: list[str]) -> str:
    """``orders_per_minute: 12 · expected_orders: 100``: the named numbers of ``obs``
    (``value`` or a detail of the check); names the check did not report are left out."""
    shown = []
    for name in names:
        value = obs.value if name == "value" else obs.details.get(name)
        if isinstance(value, bool) or value is None:
            continue
        text = fmt_number(float(value)) if isinstance(value, int | float) else str(value)
        shown.append(f"{name}: {text}")
    return " · ".join(shown)


def audience_views(notes: Annotations, obs: Observation) -> dict[str, dict[str, str]]:
    """Every audience's ``{"text", "dashboard_url"}`` for this alert: its text with its
    metrics after it, and its dashboard (else the rule's). Empty when the rule gives no
    audience any text: then every receiver shows the same words."""
    if not notes.audience_text:
        return {}
    views: dict[str, dict[str, str]] = {}
    for audience in AUDIENCES:
        own = notes.audience_text.get(audience)
        text, dashboard = "", notes.dashboard_url
        if own is not None:
            metrics = metric_values(obs, own.metrics)
            text = " ".join(x for x in (own.text, f"({metrics})" if metrics else "") if x)
            dashboard = own.dashboard_url or dashboard
        views[audience] = {"text": text, "dashboard_url": dashboard}
    return views


def alert_for(alert: AlertMessage, audience: str) -> AlertMessage:
    """``alert`` as ``audience`` reads it (unchanged when it carries no views)."""
    views: Any = alert.get("audiences") or {}
    view = views.get(audience)
    if not isinstance(view, dict):
        return alert
    return {**alert, "audience": audience, "audience_text": str(view.get("text", "")),
            "dashboard_url": str(view.get("dashboard_url", ""))}


def for_audience(group: GroupMessage, audience: str | None) -> GroupMessage:
    """The group in ``audience``'s words; None (a receiver that says no audience): as is."""
    if audience is None:
        return group
    return {**group, "alerts": [alert_for(a, audience) for a in group.get("alerts", [])]}
