"""``alert-jobs disable RULE --for 1d``: disabled for a while, then enabled by itself."""

from __future__ import annotations

from datetime import timedelta

from alert_jobs.store import utcnow
from tests.cli.test_cli import env  # noqa: F401  (the fixture)


def test_disable_for_a_day_records_the_expiry(env):  # noqa: F811
    r = env.run("disable", "dead_letters", "--for", "1d", "--by", "carol", "--note", "deploy")
    assert r.rc == 0, r.err
    assert "rule dead_letters disabled until" in r.out
    setting = env.timeline.rule_settings.get("dead_letters")
    assert setting.disabled and setting.until is not None
    assert timedelta(hours=23, minutes=59) < setting.until - utcnow() <= timedelta(days=1)
    [event] = env.events("disabled")
    assert event["payload"]["until"] == setting.until.isoformat()
    # It counts as enabled once the day is over.
    assert env.timeline.rule_settings.disabled(utcnow() + timedelta(days=1, minutes=1)) == set()
    assert env.timeline.rule_settings.disabled() == {"dead_letters"}


def test_disable_without_for_lasts_until_enabled(env):  # noqa: F811
    r = env.run("disable", "dead_letters", "--note", "flapping")
    assert r.rc == 0, r.err
    assert "until enabled" in r.out
    assert env.timeline.rule_settings.get("dead_letters").until is None
    assert env.timeline.rule_settings.disabled(utcnow() + timedelta(days=365)) == {
        "dead_letters"}


def test_disable_for_a_bad_duration_is_a_usage_error(env):  # noqa: F811
    r = env.run("disable", "dead_letters", "--for", "soon")
    assert r.rc == 2 and "soon" in r.err
    assert env.timeline.rule_settings.disabled() == set()
