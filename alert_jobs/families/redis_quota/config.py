"""``checks.redis_quota`` in the rules file: a Redis (INFO) or Upstash database, its
command quota, and the INFO-based health checks."""

from __future__ import annotations

from dataclasses import replace
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
from alert_jobs.families.redis_quota import check as q
from alert_jobs.families.redis_quota.plans import LEGACY_FREE_DAILY, PLANS, payg_commands

PresetName = Literal["upstash_free", "upstash_payg", "upstash_fixed_250mb", "upstash_fixed_1gb",
                     "upstash_fixed_5gb", "upstash_fixed_10gb", "upstash_fixed_50gb",
                     "upstash_fixed_100gb", "upstash_fixed_500gb", "upstash_free_legacy_daily"]


class Quota(Strict):
    """A command quota: ``preset`` (an Upstash plan, :data:`~.plans.PLANS`) or ``window``
    + ``limit``.

    ``upstash_payg`` has no quota of its own: its limit is what the database's monthly
    budget buys (``budget_usd`` at $0.20 per 100K commands), because Upstash rate-limits
    the database when the budget is reached. Fixed plans have no command quota at all, so
    naming one here is an error that says so. Windows are calendar days or months in
    ``timezone`` (Upstash counts in UTC).
    """

    preset: PresetName | None = None
    window: Literal["day", "month"] | None = None
    limit: Annotated[int, Field(gt=0)] | None = None
    budget_usd: Annotated[float, Field(gt=0)] | None = None
    timezone: Timezone = "UTC"

    @model_validator(mode="after")
    def _preset_or_custom(self) -> Quota:
        if self.budget_usd is not None and self.preset != "upstash_payg":
            raise PydanticCustomError(
                "quota", "budget_usd is the monthly budget of a Pay-as-you-go database: it "
                "goes with preset: upstash_payg")
        if self.preset == "upstash_free_legacy_daily":
            self.window = self.window or "day"
            self.limit = self.limit or LEGACY_FREE_DAILY
        elif self.preset is not None:
            plan = PLANS[self.preset]
            if self.preset == "upstash_payg":
                if self.limit is None and self.budget_usd is None:
                    raise PydanticCustomError(
                        "quota", "upstash_payg has no command quota of its own: give "
                        "budget_usd (the database's monthly budget; at $0.20 per 100K "
                        "commands Upstash rate-limits the database once it is spent) or limit")
                self.limit = self.limit or payg_commands(self.budget_usd or 0.0)
            elif plan.monthly_commands is None:
                raise PydanticCustomError(
                    "quota", "{plan} has no command quota ({name}: a flat {price}, capped "
                    "at {cps} commands/s and {size} of data); give window + limit for a "
                    "budget of your own, and watch the rate with ops_rate",
                    {"plan": self.preset, "name": plan.name, "price": plan.price,
                     "cps": f"{plan.commands_per_second:,}", "size": plan.data_size})
            else:
                self.limit = self.limit or plan.monthly_commands
            self.window = self.window or "month"
        if self.window is None or self.limit is None:
            raise PydanticCustomError(
                "quota", "give a preset (upstash_free, upstash_payg with budget_usd, "
                "upstash_free_legacy_daily) or window + limit")
        return self


class HitRateBand(Strict):
    """One hit-rate band: below ``below`` percent, alert at ``severity``. Either may be
    left out to keep the built-in value (bad: 50 %, warning; terrible: 20 %, critical)."""

    below: Annotated[float, Field(gt=0, le=100)] | None = None
    severity: Severity | None = None


class HitRateBands(Strict):
    """``hit_rate``: the Redis guide's bands, judged over the reads of the last ``window``.

    good ≥ ``good_at`` (80 %), bad < ``bad.below`` (50 %, warning), terrible <
    ``terrible.below`` (20 %, critical); a band set to ``null`` is off. Fewer than
    ``min_reads`` reads in the window are too few to judge: no alert, and the message
    says so.
    """

    good_at: Annotated[float, Field(gt=0, le=100)] = 80
    bad: HitRateBand | None = Field(default_factory=HitRateBand)
    terrible: HitRateBand | None = Field(default_factory=HitRateBand)
    window: Duration = timedelta(minutes=15)
    min_reads: Annotated[int, Field(ge=1)] = 100

    @model_validator(mode="after")
    def _ordered(self) -> HitRateBands:
        if self.window <= timedelta(0):
            raise PydanticCustomError("hit_rate", "hit_rate.window must be longer than 0s")
        spec = self.spec()
        bad = spec.bad
        terrible = (self.terrible.below or 20.0) if self.terrible is not None else None
        if bad is not None and bad.below > self.good_at:
            raise PydanticCustomError(
                "hit_rate", "hit_rate.bad.below ({bad} %) is above good_at ({good} %)",
                {"bad": bad.below, "good": self.good_at})
        if bad is not None and terrible is not None and terrible > bad.below:
            raise PydanticCustomError(
                "hit_rate", "hit_rate.terrible.below ({terrible} %) is above bad.below "
                "({bad} %): terrible is the lower band", {"terrible": terrible,
                                                          "bad": bad.below})
        return self

    def spec(self, *, bad_below: float | None = None) -> q.HitRateSpec:
        """As plain values for :func:`~.check.judge_hit_rate`; ``bad_below`` overrides
        the bad band's threshold (``hit_rate_min_percent``); a terrible band that would
        not be below it is dropped (the shorthand's one threshold, one warning band)."""
        bad = terrible = None
        if self.bad is not None:
            bad = q.Band(bad_below if bad_below is not None else self.bad.below or 50.0,
                         self.bad.severity or Severity.WARNING)
        if self.terrible is not None:
            below = self.terrible.below or 20.0
            if bad is None or below < bad.below:
                terrible = q.Band(below, self.terrible.severity or Severity.CRITICAL)
        return q.HitRateSpec(self.good_at, bad, terrible, self.window, self.min_reads)


class OpsLevel(Strict):
    """One ops/s level: at or above ``above`` for ``for``, alert at ``severity``. Each may
    be left out to keep the built-in value (high: 100, dangerous: 1,000; both for 10
    minutes; warning, critical)."""

    above: Annotated[float, Field(gt=0)] | None = None
    for_: Duration | None = Field(default=None, alias="for")
    severity: Severity | None = None


class OpsLevels(Strict):
    """``ops_rate``: the Redis guide's ops/s levels, each alerting only once the rate
    between samples has stayed at or above it for its ``for``: high (100+, heavy usage)
    and dangerous (1,000+, "cache bug or infinite loop"). A level set to ``null`` is off.
    """

    high: OpsLevel | None = Field(default_factory=OpsLevel)
    dangerous: OpsLevel | None = Field(default_factory=OpsLevel)

    @model_validator(mode="after")
    def _ordered(self) -> OpsLevels:
        spec = self.spec()
        for level in (spec.high, spec.dangerous):
            if level is not None and level.for_ < timedelta(0):
                raise PydanticCustomError("ops_rate", "ops_rate: for must not be negative")
        if spec.high is not None and spec.dangerous is not None \
                and spec.high.above >= spec.dangerous.above:
            raise PydanticCustomError(
                "ops_rate", "ops_rate.high.above ({high}) must be below dangerous.above "
                "({dangerous})", {"high": spec.high.above, "dangerous": spec.dangerous.above})
        return self

    def spec(self) -> q.OpsSpec:
        def level(given: OpsLevel | None, above: float, severity: Severity) -> q.Level | None:
            if given is None:
                return None
            return q.Level(given.above or above,
                           given.for_ if given.for_ is not None else timedelta(minutes=10),
                           given.severity or severity)

        return q.OpsSpec(level(self.high, 100.0, Severity.WARNING),
                         level(self.dangerous, 1000.0, Severity.CRITICAL))


class RedisQuotaDefaults(Strict):
    """``redis_quota_defaults:`` (top level): the hit-rate bands and ops/s levels of every
    target that does not set its own (``null`` turns a check off for all of them)."""

    hit_rate: HitRateBands | None = Field(default_factory=HitRateBands)
    ops_rate: OpsLevels | None = Field(default_factory=OpsLevels)


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
    hit_rate: HitRateBands | None = None
    ops_rate: OpsLevels | None = None
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
        shorthand = {"hit_rate_min_percent", "min_lookups"} & self.model_fields_set
        if shorthand and "hit_rate" in self.model_fields_set:
            raise PydanticCustomError(
                "hit_rate", "{keys} and hit_rate: both set the hit-rate check; use "
                "hit_rate: {{bad: {{below: …}}, min_reads: …}} alone",
                {"keys": " and ".join(sorted(shorthand))})
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

    def hit_rate_spec(self, defaults: RedisQuotaDefaults) -> q.HitRateSpec | None:
        """The hit-rate bands this target is judged by, ``None`` when the check is off.

        The target's ``hit_rate`` (``null``: off) replaces the family default whole;
        without one, the family default applies, with the older shorthands on top:
        ``hit_rate_min_percent`` is the bad band's threshold (``null``: off) and
        ``min_lookups`` is ``min_reads``.
        """
        if "hit_rate" in self.model_fields_set:
            return self.hit_rate.spec() if self.hit_rate is not None else None
        if "hit_rate_min_percent" in self.model_fields_set and not self.hit_rate_min_percent:
            return None  # null, or 0 as before the bands: a hit rate never below it
        if defaults.hit_rate is None:
            return None
        bad_below = (self.hit_rate_min_percent
                     if "hit_rate_min_percent" in self.model_fields_set else None)
        spec = defaults.hit_rate.spec(bad_below=bad_below)
        if "min_lookups" in self.model_fields_set:
            spec = replace(spec, min_reads=self.min_lookups)
        return spec

    def ops_spec(self, defaults: RedisQuotaDefaults) -> q.OpsSpec | None:
        """The ops/s levels of this target (its own ``ops_rate``, else the family
        default), ``None`` when the check is off."""
        levels = self.ops_rate if "ops_rate" in self.model_fields_set else defaults.ops_rate
        return levels.spec() if levels is not None else None


SECTION = RulesSection(family="redis_quota", rule_model=RedisQuotaTarget, order=20,
                       settings=(("redis_quota_defaults", RedisQuotaDefaults),))
