"""Actions that reach beyond the timeline: ack (incident tools hear about it),
escalation steps, and test notifications.
"""

from __future__ import annotations

from datetime import datetime

from alert_jobs.config import RulesFile
from alert_jobs.core.model import AlertState
from alert_jobs.notify.registry import build_receivers
from alert_jobs.notify.testing import send_now, test_message
from alert_jobs.store import Timeline, utcnow
from alert_jobs.store.link_uses import LinkUse


def ack_alert(rules: RulesFile, timeline: Timeline, fingerprint: str, *, by: str,
              note: str = "", outcome: str | None = None, source: str = "cli",
              run_id: str | None = None, now: datetime | None = None,
              link: LinkUse | None = None) -> AlertState:
    """Ack one alert everywhere: the timeline, and the incident tools that paged for it.
    ``link``: the signed link it came from (one episode, once; see ActionStore.ack)."""
    record = timeline.actions.ack(fingerprint, by=by, note=note, outcome=outcome,
                                  source=source, run_id=run_id, now=now, link=link)
    timeline.actions.queue_acknowledged(record, rules.router(), by=by, now=now,
                                        direct_receivers=rules.direct_receivers(record.rule))
    return record.state


def escalate_due(rules: RulesFile, timeline: Timeline, *, now: datetime | None = None,
                 run_id: str | None = None) -> list[str]:
    """Advance every due escalation step; returns what was done, one line per step.

    Steps come from the routes an alert matches (``escalation:`` on a route); each runs
    once per firing episode, in order, while the alert fires un-acked. Ack stops it.
    """
    now = now or utcnow()
    router = rules.router()
    done: list[str] = []
    for alert in timeline.alerts.list():
        if alert.state != AlertState.FIRING or alert.is_acked or alert.fired_at is None:
            continue
        labels = {**alert.labels, "alertname": alert.rule, "severity": str(alert.severity)}
        steps = [s for t in router.targets(labels, rules.direct_receivers(alert.rule))
                 for s in t.escalation]
        for index, step in enumerate(steps):
            if index < alert.escalation_step or now - alert.fired_at < step.after:
                continue
            if timeline.actions.escalate(alert.fingerprint, step=index, receiver=step.receiver,
                                         after=step.after, now=now, run_id=run_id):
                done.append(f"{alert.rule} [{alert.fingerprint[:8]}] → {step.receiver} "
                            f"(step {index + 1})")
                alert = alert.evolve(escalation_step=index + 1)
            else:
                break
    return done


def send_test(rules: RulesFile, timeline: Timeline, receiver: str, *, by: str,
              run_id: str | None = None, source: str = "cli") -> str | None:
    """Send a test message through one receiver; None on success, else the error.
    Always recorded in the timeline. Raises KeyError for an unknown receiver."""
    receivers = build_receivers(rules.receivers)
    if receiver not in receivers:
        raise KeyError(f"unknown receiver {receiver!r} (known: {', '.join(receivers)})")
    now = utcnow()
    error = send_now(receivers[receiver], test_message(receiver, rules.defaults.dagster_url, now))
    timeline.events.record("notification_test", f"test message to {receiver}: "
                           + ("delivered" if error is None else f"failed: {error}"),
                           actor=by, source=source, run_id=run_id,
                           payload={"receiver": receiver, "ok": error is None})
    return error
