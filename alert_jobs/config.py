"""The rules file (``alerts.yaml``): pydantic models and a loader whose errors help.

Every error names the file, the YAML path and the reason, and all errors are
reported at once::

    alerts.yaml: checks.sql_metric[0].for: expected a duration like 5m, got '5 minutes' (line 14)

Secrets are written as env references (``url: {env: SLACK_WEBHOOK_URL}``) and stay
references in the model; they are resolved only at the moment of use, so a
secret's value never reaches a log, Dagster metadata or the timeline.
"""

from __future__ import annotations

import os
import re
import zoneinfo
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from alert_jobs.durations import DurationError, parse_duration
from alert_jobs.model import NoDataPolicy, Severity

DEFAULT_RULES_FILE = "alerts.yaml"
RULES_FILE_ENV = "ALERT_JOBS_RULES"

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
_NAME_RE = re.compile(NAME_PATTERN)


class SecretMissingError(RuntimeError):
    """An env reference whose variable is not set where the secret is needed."""


class EnvRef(BaseModel):
    """A value that lives in an environment variable: ``{env: NAME}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]

    def resolve(self) -> str:
        value = os.environ.get(self.env)
        if value is None or value == "":
            raise SecretMissingError(f"environment variable {self.env} is not set")
        return value

    def __str__(self) -> str:
        return f"{{env: {self.env}}}"


SecretOrText = EnvRef | str


def resolve(value: SecretOrText) -> str:
    """The real value of a plain string or an env reference."""
    return value.resolve() if isinstance(value, EnvRef) else value


def _duration(value: Any) -> timedelta:
    try:
        return parse_duration(value)
    except DurationError as exc:
        raise PydanticCustomError("duration", str(exc)) from None


Duration = Annotated[timedelta, BeforeValidator(_duration)]


def _name(value: Any) -> str:
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise PydanticCustomError(
            "name",
            "expected a name of lowercase letters, digits and _ starting with a letter "
            "(it becomes a Dagster asset name), got {value}",
            {"value": repr(value)},
        )
    return value


Name = Annotated[str, BeforeValidator(_name)]

_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,\-?LW#]+$")


def _cron(value: Any) -> str:
    text = str(value).strip()
    fields = text.split()
    if text.startswith("@") and text in {"@hourly", "@daily", "@weekly", "@monthly", "@yearly"}:
        return text
    well_formed = len(fields) == 5 and all(_CRON_FIELD.match(f) for f in fields)
    if not well_formed or not _dagster_accepts(text):
        raise PydanticCustomError(
            "cron",
            "expected a 5-field cron expression like '*/5 * * * *', got {value}",
            {"value": repr(value)},
        )
    return text


def _dagster_accepts(cron: str) -> bool:
    """Ask Dagster's own validator, so a rule never passes here and fails at schedule load."""
    try:
        from dagster._utils.schedules import is_valid_cron_string
    except ImportError:  # pragma: no cover - Dagster moved its helper; the regex still guards
        return True
    return bool(is_valid_cron_string(cron))


Cron = Annotated[str, BeforeValidator(_cron)]


def _timezone(value: Any) -> str:
    try:
        zoneinfo.ZoneInfo(str(value))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise PydanticCustomError(
            "timezone",
            "unknown timezone {value} (use an IANA name like UTC or Europe/Berlin)",
            {"value": repr(value)},
        ) from None
    return str(value)


Timezone = Annotated[str, BeforeValidator(_timezone)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class _ReceiverBase(_Strict):
    name: Name
    timeout: Duration = timedelta(seconds=10)
    send_resolved: bool | None = None  # None: the receiver type's default


class ConsoleReceiverConfig(_ReceiverBase):
    type: Literal["console"]


class WebhookReceiverConfig(_ReceiverBase):
    """Alertmanager webhook format v4, for existing webhook consumers."""

    type: Literal["webhook"]
    url: SecretOrText
    headers: dict[str, SecretOrText] = Field(default_factory=dict)
    max_alerts: Annotated[int, Field(ge=0)] = 0  # 0: all


class SlackReceiverConfig(_ReceiverBase):
    type: Literal["slack"]
    webhook_url: SecretOrText


class DiscordReceiverConfig(_ReceiverBase):
    type: Literal["discord"]
    webhook_url: SecretOrText


class PagerDutyReceiverConfig(_ReceiverBase):
    type: Literal["pagerduty"]
    routing_key: SecretOrText
    events_url: str = "https://events.pagerduty.com/v2/enqueue"


class EmailReceiverConfig(_ReceiverBase):
    type: Literal["email"]
    host: str
    port: Annotated[int, Field(gt=0, lt=65536)] = 587
    security: Literal["starttls", "ssl", "plain"] = "starttls"
    username: SecretOrText | None = None
    password: SecretOrText | None = None
    from_address: str
    to: Annotated[list[str], Field(min_length=1)]


class AlertmanagerReceiverConfig(_ReceiverBase):
    """Push to an existing Alertmanager's ``/api/v2/alerts``; it routes from there."""

    type: Literal["alertmanager"]
    url: SecretOrText
    headers: dict[str, SecretOrText] = Field(default_factory=dict)


ReceiverConfig = Annotated[
    ConsoleReceiverConfig | WebhookReceiverConfig | SlackReceiverConfig
    | DiscordReceiverConfig | PagerDutyReceiverConfig | EmailReceiverConfig
    | AlertmanagerReceiverConfig,
    Field(discriminator="type"),
]
RECEIVER_TYPES = ("console", "webhook", "slack", "discord", "pagerduty", "email",
                  "alertmanager")


def _matcher(value: Any) -> str:
    from alert_jobs.model import Matcher, MatcherError

    try:
        Matcher.parse(str(value))
    except MatcherError as exc:
        raise PydanticCustomError("matcher", str(exc)) from None
    return str(value)


MatcherText = Annotated[str, BeforeValidator(_matcher)]


class EscalationStep(_Strict):
    """While an alert fires un-acked, after ``after`` also notify ``receiver``."""

    after: Duration
    receiver: str


class Route(_Strict):
    """Alertmanager's route: matchers, receiver, grouping and timers, children, continue.

    Unset values are inherited from the parent; the root's defaults are in ``defaults``.
    """

    receiver: str | None = None
    matchers: list[MatcherText] = Field(default_factory=list)
    continue_: bool = Field(default=False, alias="continue")
    group_by: list[str] | None = None
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None
    escalation: list[EscalationStep] = Field(default_factory=list)
    routes: list[Route] = Field(default_factory=list)


class InhibitRule(_Strict):
    """Mute alerts matching ``target_matchers`` while an alert matching ``source_matchers``
    fires with the same values of the ``equal`` labels."""

    name: str = ""
    source_matchers: Annotated[list[MatcherText], Field(min_length=1)]
    target_matchers: Annotated[list[MatcherText], Field(min_length=1)]
    equal: list[str] = Field(default_factory=list)


class Defaults(_Strict):
    receivers: list[str] = Field(default_factory=lambda: ["console"])
    repeat_interval: Duration = timedelta(hours=4)
    timezone: Timezone = "UTC"
    schedule: Cron = "*/5 * * * *"
    dagster_url: str = "http://127.0.0.1:3000"
    redis_quota_schedule: Cron = "*/15 * * * *"
    group_by: list[str] = Field(default_factory=lambda: ["alertname"])
    group_wait: Duration = timedelta(0)
    group_interval: Duration = timedelta(minutes=5)
    max_alerts: Annotated[int, Field(ge=1)] = 100
    fallback_receiver: str | None = None  # default: console if defined, else receivers[0]
    action_base_url: str = ""  # where `alert-jobs serve` answers signed links
    action_link_ttl: Duration = timedelta(days=2)


class Expect(_Strict):
    """The good range: ``min`` and/or ``max`` (inclusive).

    ``resolve_min``/``resolve_max`` give hysteresis: once firing, the value must come
    back inside this narrower range to count as good again.
    """

    min: float | None = None
    max: float | None = None
    resolve_min: float | None = None
    resolve_max: float | None = None

    @model_validator(mode="after")
    def _bounds(self) -> Expect:
        if self.min is None and self.max is None:
            raise PydanticCustomError("bounds", "give at least one of min or max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise PydanticCustomError(
                "bounds", "min ({min}) is greater than max ({max})",
                {"min": self.min, "max": self.max},
            )
        return self


class Annotations(_Strict):
    """Text and links the message standard puts in every notification."""

    why: str = ""
    runbook_url: str = ""
    dashboard_url: str = ""
    audience: Literal["engineering", "data_science", "business"] = "engineering"
    # Text per audience, e.g. {business: "Checkout conversions may drop."}; the rule's
    # audience picks which one goes into messages.
    audience_text: dict[Literal["engineering", "data_science", "business"], str] = Field(
        default_factory=dict)


class RuleBase(_Strict):
    """Fields every rule has, whatever its check family."""

    name: Name
    description: str = ""
    severity: Severity = Severity.WARNING
    for_: Duration = Field(default=timedelta(0), alias="for")
    keep_firing_for: Duration = timedelta(0)
    repeat_interval: Duration | None = None
    nodata: NoDataPolicy = NoDataPolicy.ALERT
    error: NoDataPolicy = NoDataPolicy.ALERT
    schedule: Cron | None = None
    timezone: Timezone | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: Annotations = Field(default_factory=Annotations)
    receivers: list[str] | None = None
    enabled: bool = True

    @field_validator("labels")
    @classmethod
    def _label_names(cls, labels: dict[str, str]) -> dict[str, str]:
        for key in labels:
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
                raise PydanticCustomError("label", "bad label name {key}", {"key": repr(key)})
            if key in ("alertname", "severity"):
                raise PydanticCustomError(
                    "label", "label {key} is set by alert-jobs itself", {"key": repr(key)}
                )
        return labels


class SqlMetricRule(RuleBase):
    """A SQL query returning one number over a window, compared with an expected range.

    The query may use the bind parameters ``:window_start``, ``:window_end`` (UTC
    timestamps) and ``:window_seconds``.
    """

    database: SecretOrText
    query: str
    window: Duration = timedelta(minutes=30)
    expect: Expect
    unit: str = ""
    query_timeout: Duration = timedelta(seconds=30)

    @field_validator("query")
    @classmethod
    def _one_statement(cls, query: str) -> str:
        if ";" in query.strip().rstrip(";"):
            raise PydanticCustomError("query", "give exactly one SQL statement")
        if not query.strip():
            raise PydanticCustomError("query", "query is empty")
        return query


QUOTA_PRESETS: dict[str, tuple[Literal["day", "month"], int]] = {
    # Upstash's own docs (2025-02-26 on): Free is 500K commands per calendar month.
    "upstash_free": ("month", 500_000),
    # The limit before February 2025, still quoted by the Redis monitoring guide.
    "upstash_free_legacy_daily": ("day", 10_000),
}


class Quota(_Strict):
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


class TlsConfig(_Strict):
    """TLS for ``rediss://``: a private CA, and whether to check the certificate."""

    ca_file: str | None = None
    verify: bool = True


class UpstashApi(_Strict):
    """Upstash Developer API credentials (HTTP Basic: account email + management API key)."""

    database_id: str
    email: SecretOrText
    api_key: SecretOrText
    api_url: str = "https://api.upstash.com/v2"


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
    project_after: Duration | None = None
    hit_rate_min_percent: Annotated[float, Field(ge=0, le=100)] | None = 50
    min_lookups: Annotated[int, Field(ge=1)] = 100
    memory_max_percent: Annotated[float, Field(gt=0, le=100)] | None = 90
    clients_max_percent: Annotated[float, Field(gt=0, le=100)] | None = 90
    evicted_keys_max: Annotated[int, Field(ge=0)] | None = 0
    rejected_connections_max: Annotated[int, Field(ge=0)] | None = 0
    keys_max: Annotated[int, Field(gt=0)] | None = None

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
        return self

    @property
    def projection_delay(self) -> timedelta:
        """No projection-based alert this early in a window: extrapolating 10 minutes of
        traffic to a whole day pages people for nothing."""
        if self.project_after is not None:
            return self.project_after
        return timedelta(hours=1) if self.quota.window == "day" else timedelta(days=1)


from alert_jobs.config_drift import ScoreDriftRule  # noqa: E402  (it builds on RuleBase)


class Checks(_Strict):
    sql_metric: list[SqlMetricRule] = Field(default_factory=list)
    redis_quota: list[RedisQuotaTarget] = Field(default_factory=list)
    score_drift: list[ScoreDriftRule] = Field(default_factory=list)
    heartbeat: list[_heartbeat.HeartbeatCheck] = Field(default_factory=list)


def _console() -> ReceiverConfig:
    return ConsoleReceiverConfig(name="console", type="console")


class RulesFile(_Strict):
    version: Literal[1] = 1
    defaults: Defaults = Field(default_factory=Defaults)
    receivers: list[ReceiverConfig] = Field(default_factory=lambda: [_console()])
    route: Route | None = None
    inhibit_rules: list[InhibitRule] = Field(default_factory=list)
    checks: Checks = Field(default_factory=Checks)
    quality: _quality.QualityConfig = Field(default_factory=lambda: _quality.QualityConfig())
    heartbeats: _heartbeat.HeartbeatSettings = Field(
        default_factory=lambda: _heartbeat.HeartbeatSettings())
    self_monitoring: _heartbeat.SelfMonitoring = Field(
        default_factory=lambda: _heartbeat.SelfMonitoring())

    def rules(self) -> list[RuleBase]:
        return [*self.checks.sql_metric, *self.checks.redis_quota, *self.checks.score_drift,
                *self.checks.heartbeat]

    def rule(self, name: str) -> RuleBase:
        for rule in self.rules():
            if rule.name == name:
                return rule
        known = ", ".join(sorted(r.name for r in self.rules())) or "none"
        raise KeyError(f"unknown rule {name!r} (known rules: {known})")

    def receiver(self, name: str) -> ReceiverConfig:
        for receiver in self.receivers:
            if receiver.name == name:
                return receiver
        raise KeyError(f"unknown receiver {name!r}")

    def fallback_receiver(self) -> str:
        """Where "receiver broken" alerts go: configured, else console, else the default."""
        names = [r.name for r in self.receivers]
        if self.defaults.fallback_receiver:
            return self.defaults.fallback_receiver
        return "console" if "console" in names else (self.defaults.receivers or names)[0]

    def direct_receivers(self, rule_name: str) -> tuple[str, ...]:
        """A rule's own ``receivers:`` (which bypass the route tree), or () to route."""
        for rule in self.rules():
            if rule.name == rule_name:
                return tuple(rule.receivers or ())
        return ()

    def schedule_for(self, rule: RuleBase) -> str:
        return rule.schedule or self.defaults.schedule

    def timezone_for(self, rule: RuleBase) -> str:
        return rule.timezone or self.defaults.timezone

    def repeat_interval_for(self, rule: RuleBase) -> timedelta:
        return rule.repeat_interval or self.defaults.repeat_interval


@dataclass(frozen=True)
class RuleFileProblem:
    """One problem in a rules file, with where it is."""

    path: str
    reason: str
    line: int | None = None


class RulesError(ValueError):
    """The rules file is unreadable or invalid; ``problems`` lists every error found."""

    def __init__(self, file: str, problems: list[RuleFileProblem]):
        self.file = file
        self.problems = problems
        super().__init__(self.render())

    def lines(self) -> list[str]:
        out = []
        for p in self.problems:
            where = f"{self.file}: {p.path}: " if p.path else f"{self.file}: "
            line = f" (line {p.line})" if p.line else ""
            out.append(f"{where}{p.reason}{line}")
        return out

    def render(self) -> str:
        return "\n".join(self.lines())


def default_rules_path() -> Path:
    return Path(os.environ.get(RULES_FILE_ENV, DEFAULT_RULES_FILE))


def load_rules(path: str | os.PathLike[str] | None = None) -> RulesFile:
    """Read and validate a rules file. Raises :class:`RulesError` listing every problem."""
    file = Path(path) if path is not None else default_rules_path()
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RulesError(str(file), [RuleFileProblem("", "file not found")]) from None
    except OSError as exc:
        raise RulesError(str(file), [RuleFileProblem("", f"cannot read: {exc.strerror}")]) from None
    return parse_rules(text, str(file))


def parse_rules(text: str, filename: str = DEFAULT_RULES_FILE) -> RulesFile:
    """Validate rules given as YAML text; ``filename`` is only used in messages."""
    try:
        data = yaml.safe_load(text)
        lines = _line_index(yaml.compose(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        reason = f"not valid YAML: {getattr(exc, 'problem', None) or exc}"
        line = mark.line + 1 if mark is not None else None
        raise RulesError(filename, [RuleFileProblem("", reason, line)]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RulesError(filename, [RuleFileProblem("", "expected a mapping at the top level")])
    problems = _cross_checks(data, lines)
    try:
        rules = RulesFile.model_validate(data)
    except ValidationError as exc:
        schema_problems = [_problem(err, lines) for err in exc.errors()]
        raise RulesError(filename, _in_file_order(schema_problems + problems)) from None
    if problems:
        raise RulesError(filename, problems)
    return rules


def _in_file_order(problems: list[RuleFileProblem]) -> list[RuleFileProblem]:
    return sorted(problems, key=lambda p: (p.line or 0, p.path))


def _problem(err: Any, lines: dict[tuple[Any, ...], int]) -> RuleFileProblem:
    loc = tuple(p for p in err["loc"] if not _is_union_tag(p))
    if len(loc) > 2 and loc[0] == "receivers" and loc[2] in RECEIVER_TYPES:
        loc = loc[:2] + loc[3:]  # the discriminator tag pydantic adds; the user never wrote it
    reason = err["msg"]
    if err["type"] == "extra_forbidden":
        reason = "unknown key"
    elif err["type"] == "missing":
        reason = "required key is missing"
    elif reason.startswith("Value error, "):
        reason = reason[len("Value error, ") :]
    return RuleFileProblem(yaml_path(loc), reason, _nearest_line(loc, lines))


def _is_union_tag(part: Any) -> bool:
    # pydantic puts the union member's type name in the location (``str``, ``EnvRef``);
    # the user never wrote it, so it must not show in the path.
    return isinstance(part, str) and (part in ("str", "EnvRef") or part.startswith("function-"))


def yaml_path(loc: tuple[Any, ...]) -> str:
    """``('checks', 'sql_metric', 0, 'for')`` → ``checks.sql_metric[0].for``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _line_index(node: yaml.Node | None) -> dict[tuple[Any, ...], int]:
    """Map each YAML path to its 1-based line, so errors can point at the line."""
    index: dict[tuple[Any, ...], int] = {}

    def walk(n: yaml.Node, path: tuple[Any, ...]) -> None:
        index[path] = n.start_mark.line + 1
        if isinstance(n, yaml.MappingNode):
            for key, value in n.value:
                child = (*path, key.value)
                walk(value, child)
                index[child] = key.start_mark.line + 1
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                walk(item, (*path, i))

    if node is not None:
        walk(node, ())
    return index


def _nearest_line(loc: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> int | None:
    for cut in range(len(loc), 0, -1):
        if loc[:cut] in lines:
            return lines[loc[:cut]]
    return None


def _cross_checks(data: dict[str, Any], lines: dict[tuple[Any, ...], int]) -> list[RuleFileProblem]:
    """Checks that span several parts of the file: names unique, receivers known.

    They read the raw YAML (not the validated model) so they are reported together
    with schema errors elsewhere in the file: all errors at once.
    """
    problems: list[RuleFileProblem] = []

    def add(loc: tuple[Any, ...], reason: str) -> None:
        problems.append(RuleFileProblem(yaml_path(loc), reason, _nearest_line(loc, lines)))

    def items(value: Any) -> list[tuple[int, dict[str, Any]]]:
        return [(i, x) for i, x in enumerate(value) if isinstance(x, dict)] \
            if isinstance(value, list) else []

    receivers = data.get("receivers", [{"name": "console"}])
    receiver_names: list[str] = []
    for i, receiver in items(receivers):
        name = receiver.get("name")
        if isinstance(name, str):
            if name in receiver_names:
                add(("receivers", i, "name"), f"receiver name {name!r} is used twice")
            receiver_names.append(name)
    known = ", ".join(receiver_names) or "none"

    def check_refs(loc: tuple[Any, ...], refs: Any) -> None:
        for j, name in enumerate(refs if isinstance(refs, list) else []):
            if isinstance(name, str) and name not in receiver_names:
                add((*loc, j), f"unknown receiver {name!r} (known: {known})")

    defaults = data.get("defaults") if isinstance(data.get("defaults"), dict) else {}
    assert isinstance(defaults, dict)
    if "receivers" in defaults:
        check_refs(("defaults", "receivers"), defaults.get("receivers"))
    elif "console" not in receiver_names:
        add(("defaults",), "rules without receivers go to 'console', which is not defined: "
                           "add defaults.receivers or a console receiver")
    fallback = defaults.get("fallback_receiver")
    if isinstance(fallback, str) and fallback not in receiver_names:
        add(("defaults", "fallback_receiver"), f"unknown receiver {fallback!r} (known: {known})")

    def check_route(route: Any, loc: tuple[Any, ...]) -> None:
        if not isinstance(route, dict):
            return
        name = route.get("receiver")
        if isinstance(name, str) and name not in receiver_names:
            add((*loc, "receiver"), f"unknown receiver {name!r} (known: {known})")
        for j, step in enumerate(route.get("escalation") or []):
            if isinstance(step, dict) and isinstance(step.get("receiver"), str) \
                    and step["receiver"] not in receiver_names:
                add((*loc, "escalation", j, "receiver"),
                    f"unknown receiver {step['receiver']!r} (known: {known})")
        for j, child in enumerate(route.get("routes") or []):
            check_route(child, (*loc, "routes", j))

    check_route(data.get("route"), ("route",))
    from alert_jobs.config_quality import cross_check as quality_cross_check

    quality_cross_check(data, receiver_names, add)
    checks = data.get("checks")
    seen_rules: set[str] = set()
    for family, rules in (checks.items() if isinstance(checks, dict) else []):
        for i, rule in items(rules):
            name = rule.get("name")
            if isinstance(name, str):
                if name in seen_rules:
                    add(("checks", family, i, "name"), f"rule name {name!r} is used twice")
                seen_rules.add(name)
            check_refs(("checks", family, i, "receivers"), rule.get("receivers"))
    _heartbeat.cross_check(data, add)
    return problems


def complete_rules_models() -> None:
    """Resolve the family types in ``Checks`` and ``RulesFile`` once they all exist.

    Family sections (heartbeats, quality, ...) live in their own modules, which subclass
    the bases above and are imported below. Whichever module Python loads first, each
    calls this at its end; it stays quiet while another one is still half-imported.
    """
    for model in (Checks, RulesFile):
        try:
            model.model_rebuild(raise_errors=False)
        except AttributeError:  # a family module is half-imported; it calls this again
            return


from alert_jobs import config_heartbeat as _heartbeat  # noqa: E402
from alert_jobs import config_quality as _quality  # noqa: E402

complete_rules_models()
