"""Alertmanager's JSON shapes shared by the API's endpoints: label matchers as
``{"name", "value", "isRegex", "isEqual"}``, matchers in its text syntax (the ``filter``
query parameter: ``name="value"``, ``name=~"re"``), and times as RFC 3339 in UTC with
milliseconds and ``Z`` (what go-openapi's ``strfmt.DateTime`` writes, so clients that
compare strings see the same text Alertmanager would send).

Everything that cannot be read raises :class:`~alert_jobs.http.alertmanager.errors.ApiError`
with status 400 and a reason worded for the caller, so handlers only shape answers."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from alert_jobs.core.model import Matcher, MatcherError
from alert_jobs.http.alertmanager.errors import ApiError

#: Label names as Prometheus' classic validation has them; the rest of alert-jobs (routes,
#: ``Matcher.parse``) reads the same names, so a stored matcher always prints and reparses.
LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TEXT = re.compile(r"^\s*\{?\s*([^\s=!~{},\"]*)\s*(=~|!~|!=|=)\s*(.*?)\s*\}?\s*$", re.S)
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")

#: ``(isRegex, isEqual)`` of each operator, and back.
_FLAGS = {"=": (False, True), "!=": (False, False), "=~": (True, True), "!~": (True, False)}
_OPS = {flags: op for op, flags in _FLAGS.items()}


def bad(message: str) -> ApiError:
    return ApiError(400, message)


# ----- times ------------------------------------------------------------------------


def format_time(when: datetime) -> str:
    """``2026-11-30T04:19:44.123Z``: UTC, milliseconds, ``Z`` (naive times are UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def parse_time(value: Any, field: str) -> datetime:
    """An RFC 3339 date-time (``Z`` or an offset, up to nanoseconds) as an aware UTC
    datetime; 400 naming ``field`` otherwise. Dates without a time or a zone are refused:
    a silence's end must not depend on the server's zone."""
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise bad(f"{field} must be an RFC 3339 date-time such as 2026-01-02T15:04:05Z, "
                  f"got {json.dumps(value)}")
    text = value.upper()
    fraction = re.search(r"\.(\d+)", text)
    if fraction and len(fraction.group(1)) > 6:  # Go sends nanoseconds; Python keeps µs
        text = text.replace(fraction.group(0), "." + fraction.group(1)[:6], 1)
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    except (ValueError, OverflowError) as exc:  # OverflowError: past year 9999 in UTC
        raise bad(f"{field} is not a valid date-time: {exc}") from None


# ----- matchers ---------------------------------------------------------------------


def matcher_json(matcher: Matcher) -> dict[str, Any]:
    is_regex, is_equal = _FLAGS[matcher.op]
    return {"name": matcher.name, "value": matcher.value, "isRegex": is_regex,
            "isEqual": is_equal}


def matchers_json(matchers: Iterable[Matcher]) -> list[dict[str, Any]]:
    return [matcher_json(m) for m in matchers]


def _checked(name: str, op: str, value: str, where: str) -> Matcher:
    if not name:
        raise bad(f"{where}: the label name is empty")
    if not LABEL_NAME.match(name):
        raise bad(f"{where}: invalid label name {name!r} (letters, digits and _, not "
                  "starting with a digit)")
    try:
        return Matcher(name, op, value)
    except MatcherError as exc:
        raise bad(f"{where}: {exc}") from None


def matcher_from_json(data: Any, where: str = "matcher") -> Matcher:
    """One ``{"name", "value", "isRegex", "isEqual"}`` object (``isEqual`` defaults to
    true, as in the OpenAPI spec); 400 on a missing field, an empty name or a bad regex."""
    if not isinstance(data, dict):
        raise bad(f"{where} must be an object with name, value and isRegex")
    name, value = data.get("name"), data.get("value")
    is_regex, is_equal = data.get("isRegex"), data.get("isEqual", True)
    if not isinstance(name, str):
        raise bad(f"{where}: name is required and must be a string")
    if not isinstance(value, str):
        raise bad(f"{where}: value is required and must be a string")
    if not isinstance(is_regex, bool):
        raise bad(f"{where}: isRegex is required and must be true or false")
    if not isinstance(is_equal, bool):
        raise bad(f"{where}: isEqual must be true or false")
    return _checked(name, _OPS[(is_regex, is_equal)], value, where)


def matchers_from_json(data: Any, field: str = "matchers") -> list[Matcher]:
    """A non-empty list of matcher objects; 400 otherwise."""
    if not isinstance(data, list) or not data:
        raise bad(f"{field} must be a non-empty list of matchers")
    return [matcher_from_json(item, f"{field}[{i}]") for i, item in enumerate(data)]


def _unquote(value: str, where: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            decoded = json.loads(value)  # Go-style escapes: \" \\ \n \t \uXXXX
        except ValueError:
            raise bad(f"{where}: bad escape in quoted value {value}") from None
        assert isinstance(decoded, str)
        return decoded
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1]
    if value.startswith('"') or value.endswith('"'):
        raise bad(f"{where}: unbalanced quotes in {value}")
    return value


def parse_matcher(text: str, where: str = "filter") -> Matcher:
    """Alertmanager's text syntax for one matcher: ``name="value"``, ``name!="value"``,
    ``name=~"regex"``, ``name!~"regex"`` (quotes optional; ``{…}`` around it tolerated,
    as amtool prints them); 400 when it cannot be read."""
    found = _TEXT.match(text)
    if not found:
        raise bad(f"{where}: cannot parse matcher {text!r}: expected name=\"value\", "
                  "name!=\"value\", name=~\"regex\" or name!~\"regex\"")
    name, op, value = found.groups()
    return _checked(name, op, _unquote(value, where), f"{where} {text!r}")


def parse_matchers(texts: Sequence[str], where: str = "filter") -> list[Matcher]:
    return [parse_matcher(text, where) for text in texts]


def parse_bool(value: str | None, field: str, default: bool = True) -> bool:
    """A query parameter's boolean as go-openapi reads it; 400 otherwise."""
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes", "y", "on", "t"):
        return True
    if lowered in ("false", "0", "no", "n", "off", "f"):
        return False
    raise bad(f"{field} must be true or false, got {value!r}")


__all__ = ["LABEL_NAME", "bad", "format_time", "matcher_from_json", "matcher_json",
           "matchers_from_json", "matchers_json", "parse_bool", "parse_matcher",
           "parse_matchers", "parse_time"]
