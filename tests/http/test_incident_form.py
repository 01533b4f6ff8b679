"""The incident questions as HTML (escaped, prefilled) and the answers read back."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from alert_jobs.config.incidents import IncidentsConfig
from alert_jobs.http.incident_form import (
    IncidentFormError,
    incident_form_html,
    parse_incident_form,
)
from alert_jobs.store.incidents import Incident

T0 = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)
CONFIG = IncidentsConfig(verified_methods=["dashboard", "logs"])
STRICT = IncidentsConfig(verified_methods=["dashboard", "logs"], verified_free_text=False)


def record(**changes: object) -> Incident:
    values: dict[str, object] = dict(
        id=1, fingerprint="abc", episode=1, rule="r", title="r firing", labels={},
        started_at=T0, ended_at=None, detected_by=None, verified="dashboard",
        false_positive=True, mitigation="<script>alert(1)</script>",
        follow_ups=["OPS-1", "https://t.example/2"], runbook_sufficient=None,
        runbook_missing=None, created_by="ana", created_at=T0, updated_at=T0)
    values.update(changes)
    return Incident(**values)  # type: ignore[arg-type]


def test_the_form_is_prefilled_and_escaped() -> None:
    html = incident_form_html(incident=record(), config=CONFIG, action='/x?a=1&b="2"',
                              extra_hidden={"csrf": 'tok"en'})
    assert '<form method="post" action="/x?a=1&amp;b=&#34;2&#34;"' in html
    assert '<input type="hidden" name="csrf" value="tok&#34;en">' in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;</textarea>" in html
    assert "<script>" not in html
    assert '<option value="dashboard" selected>' in html
    assert '<option value="yes" selected>yes</option>' in html  # false positive: yes
    assert "OPS-1\nhttps://t.example/2</textarea>" in html
    assert 'name="by"' in html and 'name="verified_other"' in html
    page = incident_form_html(incident=None, config=STRICT, action="/y", ask_by=False)
    assert 'name="by"' not in page and 'name="verified_other"' not in page
    assert page.count(" selected>") == 2  # nothing answered yet: both yes/no say so
    assert '<option value="" selected>(not answered)</option>' in page
    free = incident_form_html(incident=record(verified="a graph"), config=CONFIG, action="/z")
    assert 'name="verified_other" maxlength="4000" value="a graph"' in free


def test_answers_are_read_with_their_meaning() -> None:
    by, changes = parse_incident_form({
        "by": " ana  b ", "verified": "", "verified_other": "a graph", "false_positive": "no",
        "runbook_sufficient": "unknown", "mitigation": " restarted ", "follow_ups":
        "OPS-1\n\n https://t.example/2 \n", "runbook_missing": ""}, CONFIG)
    assert by == "ana b"
    assert changes == {"verified": "a graph", "false_positive": False,
                       "runbook_sufficient": None, "mitigation": "restarted",
                       "follow_ups": ["OPS-1", "https://t.example/2"]}
    # the list wins over the free text; the configured spelling is kept
    assert parse_incident_form({"by": "a", "verified": "LOGS", "verified_other": "x"},
                               CONFIG)[1] == {"verified": "logs"}


@pytest.mark.parametrize("form, config, message", [
    ({"verified": "logs"}, CONFIG, "Say who you are"),
    ({"by": "a"}, CONFIG, "Nothing was answered"),
    ({"by": "a", "false_positive": "maybe"}, CONFIG,
     '"False positive[?]" with yes, no or unknown, not .maybe.'),
    ({"by": "a", "runbook_sufficient": "1"}, CONFIG, 'runbook sufficient[?]" with yes'),
    ({"by": "a", "verified_other": "gut feeling"}, STRICT, "verified must be one of"),
    ({"by": "a", "mitigation": "x" * 4001}, CONFIG, "longer than 4,000"),
    ({"by": "a", "follow_ups": "two words"}, CONFIG, "not one link or ticket id"),
    ({"by": "x" * 129, "mitigation": "m"}, CONFIG, "at most 128"),
])
def test_bad_answers_say_why(form: dict[str, str], config: IncidentsConfig,
                             message: str) -> None:
    with pytest.raises(IncidentFormError, match=message):
        parse_incident_form(form, config)
