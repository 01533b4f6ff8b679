"""Jobs an operator launches from the Dagster UI with launchpad config: ack, snooze,
silence, test a receiver, fire drill (plus its optional monthly schedule), and outbox
delivery (``deliver_outbox_job``, which sensors
request too, is defined in :mod:`alert_jobs.runtime.delivery_job`). They do exactly what
the CLI does, through the same timeline methods, and record the Dagster run id on the
event.
"""

# No `from __future__ import annotations` here: Dagster reads these annotations at
# definition time to find context types and config classes.

from datetime import timedelta

import dagster as dg
from pydantic import Field

from alert_jobs.config import RulesFile
from alert_jobs.config.drills import DrillsConfig
from alert_jobs.core.durations import parse_duration
from alert_jobs.core.model import AckOutcome, Matcher
from alert_jobs.runtime.actions import ack_alert as ack_and_notify
from alert_jobs.runtime.actions import send_test
from alert_jobs.runtime.deliver import deliver
from alert_jobs.runtime.delivery_job import deliver_outbox_job
from alert_jobs.runtime.drill import DrillError, run_drill
from alert_jobs.runtime.resources import AlertJobsResource
from alert_jobs.store import TimelineError, utcnow


class AckConfig(dg.Config):
    target: str = Field(description="Rule name or alert fingerprint (see `alert-jobs status`).")
    by: str = Field(description="Who acknowledges.")
    note: str = ""
    outcome: str | None = Field(
        default=None, description="actionable | false-positive | noise | duplicate"
    )


class SnoozeConfig(dg.Config):
    target: str = Field(description="Rule name or alert fingerprint.")
    duration: str = Field(default="1h", description="How long, e.g. 1h, 6h, 2d.")
    by: str = "dagster-ui"
    note: str = ""


class SilenceConfig(dg.Config):
    matchers: list[str] = Field(
        description="Label matchers, e.g. alertname=dead_letters, team=~pay.*")
    duration: str = Field(default="2h", description="How long, e.g. 2h.")
    by: str = Field(description="Who creates the silence.")
    comment: str = Field(description="Why (required, shown on every muted alert).")


def _fail(exc: Exception) -> dg.Failure:
    return dg.Failure(description=str(exc))


@dg.op(description="Acknowledge alerts: no more pages until they resolve.")
def ack_alert(context: dg.OpExecutionContext, config: AckConfig,
              alert_jobs: AlertJobsResource) -> None:
    timeline = alert_jobs.timeline()
    rules = alert_jobs.load_rules()
    try:
        outcome = str(AckOutcome(config.outcome)) if config.outcome else None
        alerts = [a for a in timeline.alerts.resolve_target(config.target) if a.state.is_active]
        if not alerts:
            raise TimelineError(f"nothing to ack: no firing alert matches {config.target!r}")
        for alert in alerts:
            ack_and_notify(rules, timeline, alert.fingerprint, by=config.by, note=config.note,
                      outcome=outcome, source="dagster", run_id=context.run_id)
            context.log.info(f"acked {alert.rule} [{alert.fingerprint[:8]}]")
    except (TimelineError, ValueError) as exc:
        raise _fail(exc) from None
    context.log.info(f"delivery: {deliver(rules, timeline, run_id=context.run_id)}")


@dg.op(description="Snooze alerts until a time; they speak again after, if still firing.")
def snooze_alert(context: dg.OpExecutionContext, config: SnoozeConfig,
                 alert_jobs: AlertJobsResource) -> None:
    timeline = alert_jobs.timeline()
    try:
        until = utcnow() + _positive(config.duration)
        for alert in timeline.alerts.resolve_target(config.target):
            timeline.actions.snooze(alert.fingerprint, until=until, by=config.by, note=config.note,
                                    source="dagster", run_id=context.run_id)
            context.log.info(f"snoozed {alert.rule} [{alert.fingerprint[:8]}] until {until}")
    except (TimelineError, ValueError) as exc:
        raise _fail(exc) from None


@dg.op(description="Silence every alert matching all label matchers for a while.")
def silence_alerts(context: dg.OpExecutionContext, config: SilenceConfig,
                   alert_jobs: AlertJobsResource) -> None:
    try:
        matchers = [Matcher.parse(m) for m in config.matchers]
        silence = alert_jobs.timeline().silences.add(
            matchers, ends_at=utcnow() + _positive(config.duration), created_by=config.by,
            comment=config.comment, source="dagster", run_id=context.run_id)
    except (TimelineError, ValueError) as exc:
        raise _fail(exc) from None
    context.log.info(f"created {silence.describe()}")


class NotifyTestConfig(dg.Config):
    receiver: str = Field(description="Receiver name from the rules file.")
    by: str = "dagster-ui"


@dg.op(description="Send a clearly marked test message through one receiver.")
def notify_test(context: dg.OpExecutionContext, config: NotifyTestConfig,
                alert_jobs: AlertJobsResource) -> None:
    try:
        error = send_test(alert_jobs.load_rules(), alert_jobs.timeline(), config.receiver,
                          by=config.by, run_id=context.run_id, source="dagster")
    except KeyError as exc:
        raise _fail(ValueError(exc.args[0])) from None
    if error is not None:
        raise dg.Failure(description=f"test message to {config.receiver} failed: {error}")
    context.log.info(f"test message delivered to {config.receiver}")


class FireDrillConfig(dg.Config):
    rule: str = Field(description="Rule to drill: its receivers get a [DRILL] page.")
    by: str = Field(default="dagster-ui", description="Who runs the drill (timeline actor).")
    alert_on_failure: bool = Field(
        default=False, description="Raise fire_drill_failed on the fallback receiver if the "
                                   "drill fails (the schedule sets it).")


@dg.op(description="Fire drill: page a rule's receivers on purpose, confirm each delivery "
                   "and its time, resolve, record it (docs/drills.md).")
def fire_drill(context: dg.OpExecutionContext, config: FireDrillConfig,
               alert_jobs: AlertJobsResource) -> None:
    try:
        result = run_drill(alert_jobs.load_rules(), alert_jobs.timeline(), config.rule,
                           by=config.by, run_id=context.run_id, source="dagster",
                           alert_on_failure=config.alert_on_failure)
    except DrillError as exc:
        raise _fail(exc) from None
    for line in result.lines():
        context.log.info(line)
    if not result.passed:
        raise dg.Failure(description="; ".join(result.problems),
                         metadata={"drill": result.drill_id, "rule": result.rule})


def _positive(text: str) -> timedelta:
    delta = parse_duration(text)
    if delta <= timedelta(0):
        raise ValueError(f"duration must be positive, got {text!r}")
    return delta


@dg.job(description="Acknowledge alerts (launchpad: target, by, note, outcome).")
def ack_alert_job() -> None:
    ack_alert()


@dg.job(description="Snooze alerts (launchpad: target, duration).")
def snooze_alert_job() -> None:
    snooze_alert()


@dg.job(description="Silence alerts by label matchers "
                    "(launchpad: matchers, duration, by, comment).")
def silence_alerts_job() -> None:
    silence_alerts()


@dg.job(description="Send a test notification through a receiver (launchpad: receiver).")
def notify_test_job() -> None:
    notify_test()


@dg.job(description="Fire drill of one rule: a [DRILL] page to its receivers, each delivery "
                    "confirmed and timed, then resolved (launchpad: rule, by).",
        tags={"alert_jobs/kind": "fire_drill"})
def fire_drill_job() -> None:
    fire_drill()


OPERATOR_JOBS = [ack_alert_job, snooze_alert_job, silence_alerts_job, deliver_outbox_job,
                 notify_test_job, fire_drill_job]


def drill_schedule(drills: DrillsConfig) -> dg.ScheduleDefinition | None:
    """The ``drills:`` schedule: one ``fire_drill_job`` run per listed rule at each tick,
    in the section's timezone, raising ``fire_drill_failed`` when a drill fails. None
    when no rule is listed; stopped unless ``enabled`` (a drill pages real people)."""
    if not drills.rules:
        return None

    @dg.schedule(name="fire_drill_schedule", job=fire_drill_job,
                 cron_schedule=drills.schedule, execution_timezone=drills.timezone,
                 default_status=(dg.DefaultScheduleStatus.RUNNING if drills.enabled
                                 else dg.DefaultScheduleStatus.STOPPED),
                 description=f"Fire drills of {', '.join(drills.rules)} "
                             f"({drills.schedule}, {drills.timezone})")
    def fire_drill_schedule(context: dg.ScheduleEvaluationContext
                            ) -> list[dg.RunRequest]:
        stamp = context.scheduled_execution_time.isoformat()  # one run per rule per tick
        return [dg.RunRequest(
            run_key=f"{rule}:{stamp}",
            run_config={"ops": {"fire_drill": {"config": {
                "rule": rule, "by": drills.by, "alert_on_failure": True}}}},
            tags={"alert_jobs/drill_rule": rule}) for rule in drills.rules]

    return fire_drill_schedule


def definitions(rules: RulesFile | None = None) -> dg.Definitions:
    """The operator jobs, and the fire drill schedule when ``rules`` configure one."""
    schedule = drill_schedule(rules.section(DrillsConfig)) if rules is not None else None
    return dg.Definitions(jobs=OPERATOR_JOBS, schedules=[schedule] if schedule else [])
