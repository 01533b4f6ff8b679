"""The value types every section of the rules file uses.

Secrets are written as env references (``url: {env: SLACK_WEBHOOK_URL}``) and stay
references in the model; they are resolved only at the moment of use, so a secret's
value never reaches a log, Dagster metadata or the timeline. Durations, names, cron
expressions and timezones are validated here once, with messages that say what was
expected, so every family's rules read the same way.
"""

from __future__ import annotations

import os
import re
import zoneinfo
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from alert_jobs.core.cron import is_valid_cron
from alert_jobs.core.durations import DurationError, parse_duration
from alert_jobs.core.model import Matcher, MatcherError

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


def env_refs(model: BaseModel) -> list[str]:
    """Names of the environment variables a model's secrets come from, in field order."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, EnvRef):
            found.append(value.env)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list | tuple):
            for v in value:
                walk(v)
        elif isinstance(value, BaseModel):
            found.extend(env_refs(value))

    for name in type(model).model_fields:
        walk(getattr(model, name))
    return found


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
    well_formed = text.startswith("@") or (
        len(fields) == 5 and all(_CRON_FIELD.match(f) for f in fields))
    if not well_formed or not is_valid_cron(text):
        raise PydanticCustomError(
            "cron",
            "expected a 5-field cron expression like '*/5 * * * *', got {value}",
            {"value": repr(value)},
        )
    return text


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


class Strict(BaseModel):
    """Base of every rules-file model: unknown keys are errors (a typo must not be ignored)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _matcher(value: Any) -> str:
    try:
        Matcher.parse(str(value))
    except MatcherError as exc:
        raise PydanticCustomError("matcher", str(exc)) from None
    return str(value)


MatcherText = Annotated[str, BeforeValidator(_matcher)]
