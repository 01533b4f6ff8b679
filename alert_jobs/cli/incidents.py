"""``alert-jobs incident``: describe what happened in an incident, from a terminal.

* ``show TARGET [--episode N]`` and ``set TARGET [--episode N] --verified … …``: the
  record of one alert episode (TARGET a fingerprint prefix of 6+ characters, or a rule
  with a single alert; the default episode is the alert's latest, firing or resolved)
  or of an incident by id (``#12``, or ``12``: digits shorter than a fingerprint prefix);
* ``add --title … --start ISO --detected-by … --label k=v``: an incident no rule caught;
* ``list [--month YYYY-MM] [--without-alert]``: the month's incidents;
* ``export TARGET [--episode N] [-o FILE]``: the record as markdown, for a postmortem.

Every change is an ``incident`` event with ``--by`` as actor and source ``cli``, as the
pages and the resolve message's link write theirs. Bad input exits 2 with a message and
writes nothing.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alert_jobs.runtime.commands import (
    EXIT_OK,
    Commands,
    UsageError,
    clip,
    default_actor,
    table,
    timeline_of,
    utcnow,
)

if TYPE_CHECKING:
    from alert_jobs.config.incidents import IncidentsConfig
    from alert_jobs.core.model import AlertRecord
    from alert_jobs.store import Timeline
    from alert_jobs.store.incidents import Incident

SOURCE = "cli"
#: A fingerprint prefix has at least this many characters; shorter digits are an id.
MIN_PREFIX = 6
YES_NO = ("yes", "no", "unknown")


@dataclass(frozen=True)
class Target:
    """What a command's TARGET names: an alert episode (with its record, if any) or an
    incident by id."""

    incident: Incident | None
    alert: AlertRecord | None = None
    episode: int | None = None

    def describe(self) -> str:
        if self.alert is not None:
            return f"{self.alert.rule} [{self.alert.fingerprint[:12]}] episode {self.episode}"
        assert self.incident is not None
        return f"incident #{self.incident.id}"


def incident_id_of(text: str) -> int | None:
    """``#12`` or ``12`` (digits shorter than a fingerprint prefix) → 12."""
    raw = text.strip()
    if raw.startswith("#"):
        raw = raw[1:]
        if not raw.isdigit():
            raise UsageError(f"{text!r} is not an incident id: write #12")
    elif not (raw.isdigit() and len(raw) < MIN_PREFIX):
        return None
    if int(raw) > 2**31 - 1:
        raise UsageError(f"no incident {text!r}")
    return int(raw)


def resolve(timeline: Timeline, text: str, episode: int | None) -> Target:
    from alert_jobs.store import TimelineError

    incident_id = incident_id_of(text)
    if incident_id is not None:
        if episode is not None:
            raise UsageError("--episode goes with a fingerprint, not an incident id")
        found = timeline.incidents.get(incident_id)
        if found is None:
            raise UsageError(f"no incident #{incident_id} (see `alert-jobs incident list`)")
        return Target(found)
    try:
        alerts = timeline.alerts.resolve_target(text, active_only=False)
    except TimelineError as exc:
        raise UsageError(str(exc)) from None
    if len(alerts) > 1:
        shown = ", ".join(a.fingerprint[:12] for a in alerts[:5])
        raise UsageError(f"{text!r} names {len(alerts)} alerts ({shown}"
                         f"{', …' if len(alerts) > 5 else ''}); give a fingerprint prefix")
    alert = alerts[0]
    if alert.episode < 1:
        raise UsageError(f"{alert.rule} [{alert.fingerprint[:12]}] has not fired yet: "
                         "there is no episode to describe")
    chosen = alert.episode if episode is None else episode
    if not 1 <= chosen <= alert.episode:
        raise UsageError(f"{alert.rule} [{alert.fingerprint[:12]}] has episodes 1 to "
                         f"{alert.episode}, not {chosen}")
    return Target(timeline.incidents.for_episode(alert.fingerprint, chosen), alert, chosen)


def _yes_no(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "no")


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def print_record(incident: Incident, heading: str) -> None:
    rows: list[tuple[str, str]] = [
        ("title", incident.title),
        ("labels", ", ".join(f"{k}={v}" for k, v in sorted(incident.labels.items())) or "-"),
        ("started", _when(incident.started_at)), ("ended", _when(incident.ended_at))]
    if not incident.has_alert:
        rows.append(("detected by", incident.detected_by or "-"))
    rows += [("verified", incident.verified or "-"),
             ("false positive", _yes_no(incident.false_positive)),
             ("mitigation", incident.mitigation or "-"),
             ("follow-ups", "\n".join(incident.follow_ups) or "-"),
             ("runbook sufficient", _yes_no(incident.runbook_sufficient)),
             ("runbook missing", incident.runbook_missing or "-"),
             ("people involved", ", ".join(incident.actors) or incident.created_by)]
    print(f"incident #{incident.id}: {heading}")
    width = max(len(name) for name, _ in rows) + 1
    for name, value in rows:
        lines = value.splitlines() or [""]
        print(f"  {name + ':':<{width}} {lines[0]}")
        for line in lines[1:]:
            print(f"  {'':<{width}} {line}")


def cmd_show(args: argparse.Namespace) -> int:
    target = resolve(timeline_of(args), args.target, args.episode)
    if target.incident is None:
        print(f"no incident record for {target.describe()} yet; answer with "
              f"`alert-jobs incident set {args.target} --verified … --false-positive no …`")
        return EXIT_OK
    print_record(target.incident, target.describe())
    return EXIT_OK


def _incidents_config(args: argparse.Namespace) -> IncidentsConfig:
    """The rules file's ``incidents:``; answering must work while the file is being
    fixed, so a broken one falls back to the defaults (with a warning)."""
    from alert_jobs.config import RulesError, RulesFile, load_rules

    try:
        return load_rules(args.rules).incidents
    except RulesError:
        print(f"alert-jobs: warning: {args.rules} does not load; checking answers against "
              "the default incidents: settings", file=sys.stderr)
        return RulesFile().incidents


def changes_of(args: argparse.Namespace, current: Incident | None) -> dict[str, Any]:
    """The answers given on the command line, checked as the store checks them."""
    from alert_jobs.store.incidents import IncidentError, check_changes

    changes: dict[str, Any] = {}
    if args.verified is not None:
        try:
            changes["verified"] = _incidents_config(args).check_verified(args.verified)
        except ValueError as exc:
            raise UsageError(f"--verified: {exc}") from None
    for key in ("false_positive", "runbook_sufficient"):
        answer = getattr(args, key)
        if answer is not None:
            changes[key] = None if answer == "unknown" else answer == "yes"
    for key in ("mitigation", "runbook_missing"):
        text = getattr(args, key)
        if text is not None:
            if not text.strip():
                raise UsageError(f"--{key.replace('_', '-')} is empty")
            changes[key] = text
    if args.follow_up or args.clear_follow_ups:
        kept = [] if args.clear_follow_ups or current is None else current.follow_ups
        changes["follow_ups"] = [*kept, *(args.follow_up or [])]
    if not changes:
        raise UsageError("nothing to set: give --verified, --false-positive, --mitigation, "
                         "--follow-up, --runbook-sufficient or --runbook-missing")
    if not args.by.strip():
        raise UsageError("--by is empty: say who answers")
    try:
        return check_changes(changes)
    except IncidentError as exc:
        raise UsageError(str(exc)) from None


def cmd_set(args: argparse.Namespace) -> int:
    from alert_jobs.store.incidents import IncidentError

    timeline = timeline_of(args)
    target = resolve(timeline, args.target, args.episode)
    changes = changes_of(args, target.incident)
    try:
        if target.alert is not None:
            assert target.episode is not None
            saved = timeline.incidents.answer(target.alert.fingerprint, target.episode, changes,
                                              by=args.by, source=SOURCE)
        else:
            assert target.incident is not None
            saved = timeline.incidents.update(target.incident.id, changes, by=args.by,
                                              source=SOURCE)
    except IncidentError as exc:
        raise UsageError(str(exc)) from None
    full = timeline.incidents.get(saved.id) or saved
    print_record(full, f"{target.describe()} (saved by {args.by})")
    return EXIT_OK


def iso_time(text: str, what: str) -> datetime:
    """An ISO time (UTC when it has no offset)."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"{what} {text!r} is not an ISO time (e.g. 2026-11-02T14:05 for "
                         "UTC, or 2026-11-02T15:05+01:00)") from None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def cmd_add(args: argparse.Namespace) -> int:
    from alert_jobs.store.incidents import IncidentError, parse_labels

    now = utcnow()
    started = iso_time(args.start, "--start")
    ended = iso_time(args.end, "--end") if args.end else None
    if started > now + timedelta(minutes=5):
        raise UsageError(f"--start {args.start} is in the future: record an incident once "
                         "it has started")
    if ended is not None and ended < started:
        raise UsageError("--end is before --start")
    if not args.title.strip():
        raise UsageError("--title is empty")
    if not args.detected_by.strip():
        raise UsageError("--detected-by is empty: say how it was noticed (the review asks "
                         "why no alert did)")
    if not args.by.strip():
        raise UsageError("--by is empty: say who records it")
    try:
        labels = parse_labels(args.label or [])
    except IncidentError as exc:
        raise UsageError(str(exc)) from None
    timeline = timeline_of(args)
    try:
        added = timeline.incidents.add(" ".join(args.title.split()), started, by=args.by,
                                       source=SOURCE, detected_by=args.detected_by,
                                       labels=labels, ended_at=ended, now=now)
    except IncidentError as exc:
        raise UsageError(str(exc)) from None
    print(f"incident #{added.id} recorded: {added.title} (started {_when(added.started_at)}); "
          f"answer the rest with `alert-jobs incident set #{added.id} …`")
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    from alert_jobs.store.incidents import month_range

    try:
        month, since, until = month_range(args.month or "", utcnow())
    except ValueError as exc:
        raise UsageError(f"--month: {exc}") from None
    found = timeline_of(args).incidents.list(since=since, until=until,
                                             with_alert=False if args.without_alert else None)
    if not found:
        which = "incidents without an alert" if args.without_alert else "incidents"
        print(f"no {which} started in {month}")
        return EXIT_OK
    rows = [[f"#{i.id}", f"{i.started_at.astimezone(UTC):%Y-%m-%d %H:%M}",
             f"{i.rule} [{(i.fingerprint or '')[:12]}] ep {i.episode}" if i.has_alert
             else "- (no alert)", clip(i.title, 50), clip(i.verified or "-", 30),
             _yes_no(i.false_positive), _yes_no(i.runbook_sufficient)] for i in found]
    print(table(rows, ["ID", "STARTED (UTC)", "ALERT", "TITLE", "VERIFIED", "FALSE POS",
                       "RUNBOOK OK"]))
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from alert_jobs.runtime.postmortem import export

    timeline = timeline_of(args)
    target = resolve(timeline, args.target, args.episode)
    if target.incident is None:
        raise UsageError(f"no incident record for {target.describe()} yet: answer first "
                         f"with `alert-jobs incident set {args.target} …`")
    text = export(timeline, target.incident)
    if not args.output or args.output == "-":
        sys.stdout.write(text)
        return EXIT_OK
    try:
        Path(args.output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    print(f"wrote {args.output} ({target.describe()})")
    return EXIT_OK


def _target_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("target", help="fingerprint prefix (6+), a rule with one alert, or an "
                                   "incident id (#12)")
    sp.add_argument("--episode", type=int, help="which episode (default: the alert's latest)")


def register(commands: Commands) -> None:
    group = commands.group("incident", "what happened in an incident: show, set, add, "
                                       "list, export (markdown for a postmortem)")
    sp = group.add_parser("show", help="an alert episode's incident record (or #ID)")
    _target_args(sp)
    sp.set_defaults(fn=cmd_show)

    sp = group.add_parser("set", help="answer: how it was verified, false positive, "
                                      "mitigation, follow-ups, runbook")
    _target_args(sp)
    sp.add_argument("--verified", help="how it was verified to be real (one of "
                                       "incidents.verified_methods, or free text if allowed)")
    sp.add_argument("--false-positive", choices=YES_NO, help="unknown clears the answer")
    sp.add_argument("--mitigation", help="what was done to stop it")
    sp.add_argument("--follow-up", action="append", metavar="URL",
                    help="a ticket link or id (repeatable; added to those recorded)")
    sp.add_argument("--clear-follow-ups", action="store_true",
                    help="forget the recorded follow-ups first")
    sp.add_argument("--runbook-sufficient", choices=YES_NO, help="unknown clears the answer")
    sp.add_argument("--runbook-missing", help="what the runbook did not say")
    sp.add_argument("--by", default=default_actor(), help="who answers (default: $USER)")
    sp.set_defaults(fn=cmd_set)

    sp = group.add_parser("add", help="record an incident no rule caught")
    sp.add_argument("--title", required=True)
    sp.add_argument("--start", required=True, help="ISO time (UTC if no offset)")
    sp.add_argument("--end", help="ISO time (UTC if no offset)")
    sp.add_argument("--detected-by", required=True,
                    help="how it was noticed (customer report, dashboard, …)")
    sp.add_argument("--label", action="append", metavar="K=V",
                    help="a label of the service(s) hit (repeatable)")
    sp.add_argument("--by", default=default_actor(), help="who records it (default: $USER)")
    sp.set_defaults(fn=cmd_add)

    sp = group.add_parser("list", help="the incidents that started in a month")
    sp.add_argument("--month", help="YYYY-MM (default: this UTC month)")
    sp.add_argument("--without-alert", action="store_true",
                    help="only incidents no rule caught")
    sp.set_defaults(fn=cmd_list)

    sp = group.add_parser("export", help="an incident as markdown, for a postmortem")
    _target_args(sp)
    sp.add_argument("-o", "--output", help="write to this file (default: standard output)")
    sp.set_defaults(fn=cmd_export)
