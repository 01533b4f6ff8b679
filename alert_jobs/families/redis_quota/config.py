"""``checks.redis_quota`` in the rules file: a Redis (INFO) or Upstash database, its
command quota, and the INFO-based health checks."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from alert_jobs.config import (
    Baseline,
    Duration,
    RuleBase,
    RulesSection,
    SecretOrText,
    Strict,
    Timezone,
)
from alert_jobs.core.durations import format_duration
from alert_jobs.core.model import Severity

QUOTA_PRESETS: dict[str, tuple[Literal["day", "month"], int]] = {
    # Upstash's own docs (2025-02-26 on): Free is 500K commands per calendar month.
    "upstash_free": ("month", 500_000),
    # The limit before February 2025, still quoted by the Redis monitoring guide.
    "upstash_free_legacy_daily": ("day", 10_000),
}


class Quota(Strict):
    """A command quota: ``preset`` (``upstash_free``) or ``window`` + ``limit``.

    Windows are calendar days or months in ``timezone`` (Upstash counts in UTC).
    """

    preset: Literal["upstash_free", "upstash_free_legacy_daily"] | None = None
    window: Literal["day", "month"] | None = None
    limit: Annotated[int, Field(gt=0)] | None = None
    timezone: Timezone = "UTC"

    @model_validator(mode="after")
    def _preset_or_custom(self) -> Quota:
        if self.preset is not None:
            window, limit = QUOTA_PRESETS[self.preset]
            self.window = self.window or window
            self.limit = self.limit or limit
        if self.window is None or self.limit is None:
            raise PydanticCustomError(
                "quota",
                "give a preset (upstash_free, upstash_free_legacy_daily) or window + limit")
        return self


class TlsConfig(Strict):
    """TLS for ``rediss://``: a private CA, and whether to check the certificate."""

    ca_file: str | None = None
    verify: bool = True


class UpstashApi(Strict):
    """Upstash Developer API credentials (HTTP Basic: account email + management API key)."""

    database_id: str
    email: SecretOrText
    api_key: SecretOrText
    api_url: str = "https://api.upstash.com/v2"


class CommandRate(Strict):
    """``command_rate``: the target's commands per second (over ``rate_window``) against
    a range learned from its own history (``baseline``, :class:`~alert_jobs.config.Baseline`;
    learned live: a Redis cannot be asked for its past rates, so there is no backfill)."""

    baseline: Baseline


class RedisQuotaTarget(RuleBase):
    """One monitored Redis: where usage comes from, its quota, and the INFO-based checks.

    ``source: info`` reads one ``INFO`` per check (the only command the monitor sends,
    besides AUTH/SELECT on connect); ``source: upstash`` reads the Developer API, which
    is not a database command and so costs no quota at all.
    """

    severity: Severity = Severity.CRITICAL
    source: Literal["info", "upstash"] = "info"
    url: SecretOrText | None = None
    username: SecretOrText | None = None
    password: SecretOrText | None = None
    tls: TlsConfig = Field(default_factory=TlsConfig)
    timeout: Duration = timedelta(seconds=2)
    upstash: UpstashApi | None = None
    quota: Quota
    warn_percent: Annotated[float, Field(gt=0, le=100)] = 70
    critical_percent: Annotated[float, Field(gt=0, le=100)] = 90
    page_on_projection: bool = False
    rate_window: Duration = timedelta(hours=1)
    project_after: Duration = timedelta(minutes=15)
    hit_rate_min_percent: Annotated[float, Field(ge=0, le=100)] | None = 50
    min_lookups: Annotated[int, Field(ge=1)] = 100
    memory_max_percent: Annotated[float, Field(gt=0, le=100)] | None = 90
    clients_max_percent: Annotated[float, Field(gt=0, le=100)] | None = 90
    evicted_keys_max: Annotated[int, Field(ge=0)] | None = 0
    rejected_connections_max: Annotated[int, Field(ge=0)] | None = 0
    keys_max: Annotated[int, Field(gt=0)] | None = None
    command_rate: CommandRate | None = None

    @model_validator(mode="after")
    def _source_settings(self) -> RedisQuotaTarget:
        if self.source == "info" and self.url is None:
            raise PydanticCustomError("source", "source info needs url (redis:// or rediss://)")
        if self.source == "upstash" and self.upstash is None:
            raise PydanticCustomError("source", "source upstash needs an upstash: section")
        if isinstance(self.url, str) and not self.url.startswith(("redis://", "rediss://")):
            raise PydanticCustomError("url", "expected a redis:// or rediss:// URL")
        if self.warn_percent > self.critical_percent:
            raise PydanticCustomError("thresholds", "warn_percent is above critical_percent")
        if self.schedule is not None:
            raise PydanticCustomError(
                "schedule", "redis_quota targets are checked together in one run; set "
                "defaults.redis_quota_schedule instead of a per-target schedule")
        if self.timezone is not None:
            raise PydanticCustomError(
                "timezone", "a redis_quota target's window timezone is quota.timezone")
        if (self.source == "upstash" and self.quota.window == "day"
                and self.quota.timezone != "UTC"):
            raise PydanticCustomError(
                "timezone", "Upstash counts daily commands per UTC day; use quota.timezone UTC")
        if self.rate_window <= timedelta(0):
            raise PydanticCustomError("rate_window", "rate_window must be longer than 0s")
        # The rate is measured over at most rate_window of samples (and only those of the
        # current window), so a longer project_after could never be reached.
        if self.project_after <= timedelta(0):
            raise PydanticCustomError(
                "project_after", "project_after must be longer than 0s: a rate measured over "
                "a few seconds must not be projected to a whole day")
        if self.project_after > self.rate_window:
            raise PydanticCustomError(
                "project_after", "project_after ({after}) is longer than rate_window "
                "({window}): the rate is measured over at most rate_window of samples, so it "
                "would never be projected", {"after": format_duration(self.project_after),
                                             "window": format_duration(self.rate_window)})
        return self


SECTION = RulesSection(family="redis_quota", rule_model=RedisQuotaTarget, order=20)
