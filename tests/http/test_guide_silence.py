"""The python guide's own ``silence_alert`` (../shared/seeds/python-alerting-patterns.txt)
works against ``alert-jobs serve`` unchanged: a deploy bot's account goes into the URL
(httpx sends it as basic auth), and the silence it posts mutes that service's alerts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from alert_jobs.config import parse_rules
from alert_jobs.core.engine import RulePolicy
from alert_jobs.core.model import Observation, Status
from alert_jobs.http.alertmanager import ApiAuth
from alert_jobs.http.app import create_app
from alert_jobs.http.auth import AuthSettings
from alert_jobs.http.auth.passwords import hash_password
from alert_jobs.store import Timeline, utcnow
from tests.conftest import served_app

PASSWORD = "deploy bot password"


# ----- the guide's function, as the guide writes it ---------------------------------
def silence_alert(alertmanager_url: str, service: str, duration_hours: int = 2):  # type: ignore[no-untyped-def]
    """Create a silence for a service during maintenance."""
    now = datetime.utcnow()
    response = httpx.post(f"{alertmanager_url}/api/v2/silences", json={
        "matchers": [
            {"name": "service", "value": service, "isRegex": False}
        ],
        "startsAt": now.isoformat() + "Z",
        "endsAt": (now + timedelta(hours=duration_hours)).isoformat() + "Z",
        "createdBy": "deploy-bot",
        "comment": f"Maintenance window for {service}"
    })
    response.raise_for_status()
    return response.json()["silenceID"]
# --------------------------------------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Timeline]]:
    timeline = Timeline(f"sqlite:///{tmp_path / 'guide.db'}")
    timeline.ensure_schema()
    rules = parse_rules("defaults: {receivers: [console]}")
    accounts = {"deploy-bot": hash_password(PASSWORD, n=2**10)}
    app = create_app(lambda: timeline, lambda: rules, auth=AuthSettings(accounts=accounts),
                     api_auth=ApiAuth(accounts=accounts))
    with served_app(app) as base:
        yield base, timeline
    timeline.dispose()


def test_the_guides_silence_alert_mutes_the_service(served: tuple[str, Timeline]) -> None:
    base, timeline = served
    url = base.replace("http://", f"http://deploy-bot:{PASSWORD.replace(' ', '%20')}@")
    silence_id = silence_alert(url, "billing")
    silence = timeline.silences.get(silence_id)
    assert silence is not None and silence.created_by == "deploy-bot"
    length = silence.ends_at - silence.starts_at
    assert timedelta(hours=1, minutes=59) < length <= timedelta(hours=2)
    policy = RulePolicy(rule="dead_letters", receivers=("console",))
    muted = timeline.alerts.process(
        Observation("dead_letters", Status.ALERT, {"service": "billing"}, 1.0), policy,
        now=utcnow()).decision
    assert muted.muted_by is not None and silence_id in muted.muted_by
    other = timeline.alerts.process(  # positive control: another service still pages
        Observation("dead_letters", Status.ALERT, {"service": "checkout"}, 1.0), policy,
        now=utcnow()).decision
    assert other.muted_by is None and other.notifications
    with pytest.raises(httpx.HTTPStatusError) as refused:  # without the account: refused
        silence_alert(base, "billing")
    assert refused.value.response.status_code == 401
