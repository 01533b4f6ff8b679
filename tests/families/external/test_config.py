"""``external:`` in the rules file: defaults, checks, and the severity mapping."""

from __future__ import annotations

from datetime import timedelta

import pytest

from alert_jobs.config import RulesError
from alert_jobs.core.model import Severity
from alert_jobs.families.external.config import ExternalSettings
from tests.families.external.support import parse


def test_defaults_and_a_full_section() -> None:
    assert parse("{}").section(ExternalSettings) == ExternalSettings()
    settings = parse("""
receivers: [{name: pager, type: webhook, url: "http://127.0.0.1:9/x"}]
defaults: {receivers: [pager]}
external:
  resolve_timeout: 2m
  severity: info
  severities: {page: critical}
  receivers: [pager]
  sweep_interval_seconds: 60
""").section(ExternalSettings)
    assert settings.resolve_timeout == timedelta(minutes=2)
    assert settings.severity_of("page") == Severity.CRITICAL
    assert settings.severity_of("WARNING") == Severity.WARNING
    assert settings.severity_of("other") == settings.severity_of(None) == Severity.INFO
    assert settings.receivers == ["pager"] and settings.sweep_interval_seconds == 60


@pytest.mark.parametrize(("text", "reason"), [
    ("external: {receivers: [nobody]}", "external.receivers[0]: unknown receiver 'nobody'"),
    ("external: {resolve_timeout: 0s}", "resolve_timeout must be positive"),
    ("external: {severities: {page: loud}}", "external.severities.page"),
    ("external: {sweep_interval_seconds: 1}", "external.sweep_interval_seconds"),
    ("external: {resolve_timout: 5m}", "external.resolve_timout"),
])
def test_mistakes_are_named(text: str, reason: str) -> None:
    with pytest.raises(RulesError) as caught:
        parse(text)
    assert reason in str(caught.value)
