"""Rules-file models for heartbeats (``checks.heartbeat``), the ping receiver and
self-monitoring (``heartbeats:`` and ``self_monitoring:``).

A heartbeat is Healthchecks' check: it expects pings, either every ``period`` or on a
``cron`` schedule in ``timezone``, and goes down when a ping is ``grace`` late. It is
a rule like any other (labels, severity, receivers, annotations), so its alerts go
through the one engine, routes and silences.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from alert_jobs.config import (
    Cron,
    Duration,
    EnvRef,
    RuleBase,
    RulesSection,
    SecretOrText,
    Strict,
    Timezone,
)
from alert_jobs.config.families import AddProblem
from alert_jobs.core.model import Severity

SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,127}$"
_SLUG_RE = re.compile(SLUG_PATTERN)
MAX_BODY_LIMIT = 1_000_000
AUTO_RULE = "heartbeat"  # the rule name of checks created by their first ping
RUN_FAILED = "dagster_run_failed"  # the instance-watch rules (watch.py)
ASSET_CHECK_FAILED = "dagster_asset_check_failed"
TICK_FAILED = "dagster_tick_failed"
CHECK_STALE = "dagster_check_stale"  # watch_freshness.py
RUN_HUNG = "dagster_run_hung"  # watch_runs.py
LOCATION_FAILED = "dagster_location_failed"  # watch_locations.py
RULES_FILE_INVALID = "rules_file_invalid"  # rules_file.py
# Rule names the system alerts under itself: a rule of the file with one of them would
# share its alerts, silences and severity, so the file may not use them.
RESERVED_RULES = (AUTO_RULE, RUN_FAILED, ASSET_CHECK_FAILED, TICK_FAILED, CHECK_STALE, RUN_HUNG,
                  LOCATION_FAILED, RULES_FILE_INVALID)


def _slug(value: Any) -> str:
    if not isinstance(value, str) or not _SLUG_RE.match(value):
        raise PydanticCustomError(
            "slug",
            "expected a slug of lowercase letters, digits, - and _ (it is part of the ping "
            "URL /ping/<slug>), got {value}",
            {"value": repr(value)},
        )
    return value


Slug = Annotated[str, BeforeValidator(_slug)]


def _token(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        raise PydanticCustomError(
            "token", "an empty token would let every ping through; give a token (best as "
            "{env: NAME}) or leave token out")
    return value


Token = Annotated[SecretOrText, BeforeValidator(_token)]


def valid_slug(value: str) -> bool:
    return bool(_SLUG_RE.match(value))


class HeartbeatCheck(RuleBase):
    """One expected job: simple (``period`` + ``grace``) or cron (``cron`` + ``timezone``
    + ``grace``). ``max_duration`` turns on the start/finish alerts ("started but never
    finished", "ran longer than expected"). The rule's ``timezone`` is the cron's."""

    severity: Severity = Severity.CRITICAL
    slug: Slug | None = None  # default: the rule name
    period: Duration | None = None
    cron: Cron | None = None
    grace: Duration = timedelta(hours=1)
    max_duration: Duration | None = None
    manual_resume: bool = False
    token: Token | None = None

    @model_validator(mode="after")
    def _kind(self) -> HeartbeatCheck:
        if (self.period is None) == (self.cron is None):
            raise PydanticCustomError(
                "heartbeat", "give exactly one of period (e.g. 1d) or cron (e.g. '0 3 * * *')")
        if self.period is not None and self.period <= timedelta(0):
            raise PydanticCustomError("heartbeat", "period must be positive")
        if self.grace < timedelta(0):
            raise PydanticCustomError("heartbeat", "grace must not be negative")
        if self.max_duration is not None and self.max_duration <= timedelta(0):
            raise PydanticCustomError("heartbeat", "max_duration must be positive")
        if self.schedule is not None:
            raise PydanticCustomError(
                "schedule", "heartbeats are evaluated by the heartbeat sensor; give the "
                "expected schedule as cron (or period), not schedule")
        # A heartbeat row is looked at again only when time can change its verdict, so
        # an alert left pending (for) or recovering (keep_firing_for) would stay so.
        if self.for_ > timedelta(0):
            raise PydanticCustomError(
                "heartbeat", "for does not apply to a heartbeat: its grace is how long "
                "a ping may be late before it alerts")
        if self.keep_firing_for > timedelta(0):
            raise PydanticCustomError(
                "heartbeat", "keep_firing_for does not apply to a heartbeat: its alert "
                "resolves with the next good ping")
        if self.cron is None and self.timezone is not None:
            raise PydanticCustomError("timezone", "timezone only applies to a cron heartbeat")
        return self

    @property
    def ping_slug(self) -> str:
        return self.slug or self.name

    @property
    def kind(self) -> str:
        return "cron" if self.cron is not None else "simple"


class AutoCreate(Strict):
    """Checks created by their first ping (``/ping/<new-slug>``) when ``enabled``."""

    enabled: bool = False
    period: Duration = timedelta(days=1)
    grace: Duration = timedelta(hours=1)
    severity: Severity = Severity.WARNING
    receivers: list[str] | None = None
    token: Token | None = None  # required on pings to auto-created checks if set
    max_checks: Annotated[int, Field(ge=1)] = 10_000


class HeartbeatSettings(Strict):
    """The ping receiver: body limit, ping log size, auto-create, evaluation cadence."""

    body_limit: Annotated[int, Field(ge=0, le=MAX_BODY_LIMIT)] = 10_000
    ping_log_keep: Annotated[int, Field(ge=1, le=10_000)] = 100
    auto_create: AutoCreate = Field(default_factory=AutoCreate)
    sensor_interval_seconds: Annotated[int, Field(ge=5, le=3600)] = 30


class SelfMonitoring(Strict):
    """The alerting system watching itself and the Dagster instance.

    Open-source Dagster sends no alert for failed runs, failed asset checks or failed
    sensor/schedule ticks; with ``instance_watch`` on, each becomes an alert through
    the engine. ``deadman_url`` is pinged on every sensor tick, so someone else
    (Healthchecks, Dead Man's Snitch, another alert-jobs) notices a stopped daemon.
    """

    instance_watch: bool = True
    run_failures: bool = True
    asset_check_failures: bool = True
    tick_failures: bool = True
    severity: Severity = Severity.CRITICAL
    receivers: list[str] | None = None
    lookback: Duration = timedelta(hours=1)  # how far back the very first tick looks
    deadman_url: SecretOrText | None = None
    deadman_timeout: Duration = timedelta(seconds=3)
    #: how often the instance-watch sensor looks (Dagster's minimum sensor interval)
    watch_interval: Duration = timedelta(seconds=30)
    #: alert on scheduled checks that stopped running (windows: the ``freshness:`` section)
    stale_checks: bool = True
    # --- runs that hang (watch_runs.py) ---
    hung_runs: bool = True
    #: per job (``nightly_export: 2h``), per family (``sql_metric: 10m``) or
    #: ``default``: how long a run may be in progress; unset, the limit comes from the
    #: job's own history of run times
    hung_after: dict[str, Duration] = Field(default_factory=dict)
    #: the history-based limit is this many times the job's p95 run time …
    hung_history_factor: float = Field(default=3.0, ge=1.0)
    #: … and never below this
    hung_min: Duration = timedelta(minutes=2)
    #: a job with fewer than 5 finished runs to learn from gets this limit
    hung_without_history: Duration = timedelta(hours=1)
    # --- code locations that fail to load (watch_locations.py) ---
    location_errors: bool = True
    #: the Dagster webserver's GraphQL endpoint (load errors live only in the webserver's
    #: and the daemon's memory); default: ``defaults.dagster_url`` + ``/graphql``
    graphql_url: str | None = None
    graphql_timeout: Duration = timedelta(seconds=5)

    @model_validator(mode="after")
    def _url(self) -> SelfMonitoring:
        url = self.deadman_url
        if isinstance(url, str) and not url.startswith(("http://", "https://")):
            raise PydanticCustomError("url", "deadman_url must be an http(s) URL or {env: NAME}")
        if self.graphql_url is not None and not self.graphql_url.startswith(
                ("http://", "https://")):
            raise PydanticCustomError("url", "graphql_url must be an http(s) URL")
        if self.watch_interval < timedelta(seconds=5):
            raise PydanticCustomError("interval", "watch_interval must be at least 5s")
        return self


__all__ = ["AUTO_RULE", "AutoCreate", "EnvRef", "HeartbeatCheck", "HeartbeatSettings",
           "SelfMonitoring", "Slug", "Timezone", "valid_slug"]


def cross_check(data: dict[str, Any], receiver_names: Sequence[str], add: AddProblem) -> None:
    """Slugs are unique: two checks on one ping URL would each see half the pings."""
    checks = data.get("checks")
    items = checks.get("heartbeat") if isinstance(checks, dict) else None
    seen: dict[str, str] = {}
    for i, item in enumerate(items if isinstance(items, list) else []):
        if not isinstance(item, dict):
            continue
        slug = item.get("slug") or item.get("name")
        if not isinstance(slug, str):
            continue
        if slug in seen:
            add(("checks", "heartbeat", i, "slug" if "slug" in item else "name"),
                f"heartbeat slug {slug!r} is also used by {seen[slug]!r}")
        else:
            seen[slug] = str(item.get("name"))


SECTION = RulesSection(
    family="heartbeat", rule_model=HeartbeatCheck,
    settings=(("heartbeats", HeartbeatSettings), ("self_monitoring", SelfMonitoring)),
    reserved_rules=RESERVED_RULES, cross_check=cross_check, order=40)
