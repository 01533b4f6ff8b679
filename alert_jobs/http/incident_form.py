"""The incident questions as an HTML form, and reading the answers back.

Three ways in ask the same questions — the signed "how did it go?" link in a resolve
message, the alert's page and ``/incidents/<id>`` — so the form and its parsing live
here once: :func:`incident_form_html` renders the fragment (prefilled from the record,
every value escaped), :func:`parse_incident_form` turns a posted form into the
``(by, changes)`` that :meth:`~alert_jobs.store.incidents.IncidentStore.record` /
``update`` take, or an :class:`IncidentFormError` whose message a person can act on.

Answer semantics: an empty field means "not answered" and is left out (the record keeps
what it had); "unknown" in a yes/no question clears the answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from alert_jobs.config.incidents import IncidentsConfig
from alert_jobs.http.pages.render import TEMPLATES
from alert_jobs.store.incidents import Incident, IncidentError, check_changes

#: The yes/no questions' options: (value, what the select shows).
CHOICES = (("", "(not answered)"), ("yes", "yes"), ("no", "no"),
           ("unknown", "unknown (clears the answer)"))
TEXT_FIELDS = {"mitigation": "The mitigation", "runbook_missing": "What the runbook missed"}
MAX_TEXT = 4000
MAX_NAME = 128


class IncidentFormError(ValueError):
    """An answer that cannot be recorded; the message says why, for a person."""


def _yes_no_value(value: bool | None) -> str:
    return "" if value is None else ("yes" if value else "no")


def incident_form_html(*, incident: Incident | None, config: IncidentsConfig, action: str,
                       extra_hidden: Mapping[str, str] = {},
                       ask_by: bool = True, by: str = "",
                       submit: str = "Save the incident record") -> str:
    """A ``<form method="post" action="{action}">`` fragment asking the incident
    questions, prefilled from ``incident``. ``extra_hidden`` become hidden inputs (a
    CSRF token, the episode). ``ask_by`` False leaves out the name field (the pages
    know who is signed in)."""
    verified = incident.verified if incident else None
    choice = next((m for m in config.verified_methods
                   if verified is not None and m.lower() == verified.lower()), "")
    other = verified if verified and not choice else ""
    if other and not config.verified_free_text:
        other = ""  # an old free-text answer is kept unless someone picks from the list
    return TEMPLATES.get_template("incident_form.html").render(
        action=action, hidden=dict(extra_hidden), ask_by=ask_by, by=by,
        methods=config.verified_methods, verified_choice=choice, verified_other=other,
        free_text=config.verified_free_text, choices=CHOICES,
        false_positive=_yes_no_value(incident.false_positive if incident else None),
        mitigation=(incident.mitigation or "") if incident else "",
        follow_ups="\n".join(incident.follow_ups) if incident else "",
        runbook_sufficient=_yes_no_value(incident.runbook_sufficient if incident else None),
        runbook_missing=(incident.runbook_missing or "") if incident else "",
        submit=submit)


def _yes_no(form: Mapping[str, str], key: str, question: str) -> tuple[bool, bool | None]:
    """(answered, value): "" → not answered; "unknown" → answered, cleared."""
    raw = form.get(key, "").strip().lower()
    if raw == "":
        return False, None
    if raw in ("yes", "no"):
        return True, raw == "yes"
    if raw == "unknown":
        return True, None
    raise IncidentFormError(f"Answer \"{question}\" with yes, no or unknown, not "
                            f"{form.get(key, '')[:40]!r}.")


def parse_incident_form(form: Mapping[str, str],
                        config: IncidentsConfig) -> tuple[str, dict[str, Any]]:
    """(who answered, the changes to record). Raises :class:`IncidentFormError` with a
    human message when an answer cannot be taken, or when nothing was answered."""
    by = " ".join(form.get("by", "").split())
    if not by:
        raise IncidentFormError("Say who you are (your name), so the timeline shows who "
                                "answered.")
    if len(by) > MAX_NAME:
        raise IncidentFormError(f"A name is at most {MAX_NAME} characters.")
    changes: dict[str, Any] = {}
    # The list's answer wins; the free text counts when the list says "not answered".
    verified = form.get("verified", "").strip() or form.get("verified_other", "").strip()
    if verified:
        try:
            changes["verified"] = config.check_verified(verified)
        except ValueError as exc:
            raise IncidentFormError(f"How it was verified: {exc}.") from None
    for key, question in (("false_positive", "False positive?"),
                          ("runbook_sufficient", "Was the runbook sufficient?")):
        answered, value = _yes_no(form, key, question)
        if answered:
            changes[key] = value
    for key, what in TEXT_FIELDS.items():
        text = form.get(key, "").strip()
        if len(text) > MAX_TEXT:
            raise IncidentFormError(f"{what} is longer than {MAX_TEXT:,} characters.")
        if text:
            changes[key] = text
    ups = [line.strip() for line in form.get("follow_ups", "").splitlines() if line.strip()]
    if ups:
        changes["follow_ups"] = ups
    if not changes:
        raise IncidentFormError("Nothing was answered: fill in at least one question.")
    try:
        return by, check_changes(changes)
    except IncidentError as exc:
        raise IncidentFormError(f"{str(exc)[:1].upper()}{str(exc)[1:]}.") from None


__all__ = ["IncidentFormError", "incident_form_html", "parse_incident_form"]
