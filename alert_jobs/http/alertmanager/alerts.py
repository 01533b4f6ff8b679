"""``GET /api/v2/alerts`` and ``GET /api/v2/alerts/groups``: every alert of the timeline
in Alertmanager's ``gettableAlert`` and ``alertGroups`` shapes, so ``amtool alert query``,
Grafana and scripts see our checks' alerts (and those Prometheus pushed) as they see
Alertmanager's.

What Alertmanager has no word for is mapped, not invented:

* **Which alerts**: firing and recovering ones. Alertmanager only ever holds firing
  alerts (Prometheus does not send pending ones); a recovering alert is still firing
  for its receivers (``keep_firing_for``), so it is listed; a pending one is not.
* **status**: ``suppressed`` while an active silence matches it (``silencedBy``: the
  silence ids) or a firing alert inhibits it (``inhibitedBy``: the inhibiting alert's
  fingerprint, as Alertmanager gives one); ``active`` otherwise. Snooze, ack and a
  disabled rule are ours alone: such an alert counts as ``active`` (``amtool`` must not
  hide an acked page from whoever is looking) and says so in its annotations
  (``acked_by``, ``acked_at``, ``snoozed_until``, ``rule_disabled``). ``mutedBy`` (time
  intervals) stays empty here. No alert of ours is ``unprocessed``.
* **annotations**: ``summary`` (the last evaluation's), ``expected`` and ``value`` when
  the check gave them, and the rule's ``why`` (as ``description``), ``runbook_url`` and
  ``dashboard_url`` from the rules file.
* **startsAt**: when it fired (else when it became active). **updatedAt**: its last
  evaluation. **endsAt**: Alertmanager gives a firing alert the time it will resolve
  unless re-sent; our alerts never time out (only a check resolves them), so it is the
  time the next evaluation is due — the last evaluation plus the rule's evaluation
  interval (the longest gap of its cron; ``defaults.schedule`` for a rule not in the
  file), moved to now plus one interval when that is past (an overdue run must not make
  a client think the alert ended). A recovering alert ends when its ``keep_firing_for``
  does, if that is later.
* **generatorURL**: the Dagster run that last changed its state, when known.
* **Alerts Prometheus pushed** (the ``external`` family) are shown as their sender sent
  them: its annotations, ``generatorURL``, ``startsAt`` and ``endsAt`` (those of the
  alert the engine follows when one instance has several, i.e. the highest severity
  still firing), ``updatedAt`` = the last push. Their labels are the ones routes and
  silences see here: ``severity`` is the engine's (a ``severity="page"`` label mapped by
  ``external.severities`` shows as ``critical``).
* **receivers**: the route targets of its labels (a rule's own ``receivers:``, or
  ``external.receivers`` for pushed alerts, bypass the tree, as when notifying).
* **Groups**: one per (route, receiver, ``group_by`` values), as the notifier groups;
  ``routeLabels`` is empty (no route labels here).

Parameters as Alertmanager reads them: ``filter`` (repeatable matchers, ``name="value"``,
``name=~"re"``), ``active``, ``silenced``, ``inhibited``, ``unprocessed`` (booleans,
default true), ``receiver`` (a regex, anchored, on receiver names), ``receiver_matchers``
(our receivers carry no labels, so none match, as in Alertmanager), and for groups
``muted`` (false: leave out groups whose every alert is suppressed). A bad one is a 400
with the reason as a JSON string.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from alert_jobs.config import RuleBase, RulesError, RulesFile
from alert_jobs.core.cron import longest_gap
from alert_jobs.core.model import AlertRecord, AlertState, Matcher, Severity, alert_labels
from alert_jobs.core.routing import Inhibition, Router, RouteTarget
from alert_jobs.families.external.config import ExternalSettings
from alert_jobs.families.external.store import external_alerts
from alert_jobs.http.alertmanager.auth import ApiAuth
from alert_jobs.http.alertmanager.errors import ApiError, api
from alert_jobs.http.alertmanager.shapes import format_time, parse_bool, parse_matchers
from alert_jobs.http.pages.alert_views import AlertRow, alert_rows
from alert_jobs.store import Timeline, utcnow

ACTIVE = "active"
SUPPRESSED = "suppressed"


# ----- the query --------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    """The parameters of one listing, read and checked (a 400 for a bad one)."""

    matchers: tuple[Matcher, ...] = ()
    active: bool = True
    silenced: bool = True
    inhibited: bool = True
    receiver: re.Pattern[str] | None = None
    receiver_matchers: tuple[Matcher, ...] = ()
    muted: bool = True  # groups only

    @classmethod
    def of(cls, request: Request) -> Query:
        params = request.query_params
        receiver = params.get("receiver") or None  # amtool may send it empty: no filter
        pattern = None
        if receiver is not None:
            try:
                pattern = re.compile(f"^(?:{receiver})$")
            except re.error as exc:
                raise ApiError(400, f"failed to parse receiver param: {exc}") from None
        parse_bool(params.get("unprocessed"), "unprocessed")  # none of ours is: checked only
        return cls(
            matchers=tuple(parse_matchers(params.getlist("filter"), "filter")),
            active=parse_bool(params.get("active"), "active"),
            silenced=parse_bool(params.get("silenced"), "silenced"),
            inhibited=parse_bool(params.get("inhibited"), "inhibited"),
            receiver=pattern,
            receiver_matchers=tuple(parse_matchers(params.getlist("receiver_matchers"),
                                                   "receiver_matchers")),
            muted=parse_bool(params.get("muted"), "muted"))

    def wants_receiver(self, name: str) -> bool:
        if self.receiver_matchers:  # receivers have no labels here: none can match
            return False
        return self.receiver is None or self.receiver.match(name) is not None

    def wants_status(self, status: dict[str, Any]) -> bool:
        """Alertmanager's filter: ``active=false`` drops unsuppressed alerts,
        ``silenced=false`` silenced ones, ``inhibited=false`` inhibited ones."""
        if not self.active and status["state"] == ACTIVE:
            return False
        if not self.silenced and status["silencedBy"]:
            return False
        return self.inhibited or not status["inhibitedBy"]


# ----- the alerts -------------------------------------------------------------------


@dataclass(frozen=True)
class Listed:
    """One alert as the API shows it, with the route targets its groups come from."""

    record: AlertRecord
    labels: dict[str, str]
    targets: list[RouteTarget]
    body: dict[str, Any]

    @property
    def suppressed(self) -> bool:
        return bool(self.body["status"]["state"] == SUPPRESSED)


@functools.lru_cache(maxsize=256)
def _interval(cron: str, timezone: str) -> timedelta:
    return longest_gap(cron, timezone)


def evaluation_interval(rules: RulesFile, rule: RuleBase | None) -> timedelta:
    """How often the rule is evaluated (the longest gap of its cron)."""
    if rule is None:
        return _interval(rules.defaults.schedule, rules.defaults.timezone)
    return _interval(rules.schedule_for(rule), rules.timezone_for(rule))


def ends_at(record: AlertRecord, interval: timedelta, keep_firing_for: timedelta,
            now: datetime) -> datetime:
    """When the alert ends unless evaluated again (see the module docstring)."""
    if record.state is AlertState.RECOVERING and record.recovering_since and keep_firing_for:
        end = record.recovering_since + keep_firing_for
        if end > now:
            return end
    base = record.last_eval_at or record.fired_at or record.active_since or now
    end = base + interval
    return end if end > now else now + interval


def _check_notes(row: AlertRow, rule: RuleBase | None) -> dict[str, str]:
    """A check's alert: what its last evaluation said and the rule's links."""
    record = row.record
    out: dict[str, str] = {}
    if record.last_summary:
        out["summary"] = record.last_summary
    if record.last_expected:
        out["expected"] = record.last_expected
    if record.last_value is not None:
        out["value"] = f"{record.last_value:g}"
    if rule is not None:
        why = rule.annotations_for(record.labels).why
        if why:
            out["description"] = why
    if row.runbook_url:
        out["runbook_url"] = row.runbook_url
    if row.dashboard_url:
        out["dashboard_url"] = row.dashboard_url
    return out


def _our_mutes(row: AlertRow) -> dict[str, str]:
    """Ack, snooze and a disabled rule: ours alone, said, not counted as suppression."""
    record = row.record
    out: dict[str, str] = {}
    for mute in row.mutes:
        if mute.kind == "ack":
            out["acked_by"] = record.acked_by or "someone"
            if record.acked_at:
                out["acked_at"] = format_time(record.acked_at)
        elif mute.kind == "snooze" and mute.until:
            out["snoozed_until"] = format_time(mute.until)
        elif mute.kind == "disabled":
            out["rule_disabled"] = "true"
    return out


@dataclass(frozen=True)
class Times:
    starts: datetime
    ends: datetime
    updated: datetime


@dataclass(frozen=True)
class Pushed:
    """What the listing shows of one alert Prometheus pushed (a row the external family
    keeps while it is open)."""

    rank: int  # of its severity
    annotations: dict[str, str]
    generator_url: str
    starts_at: datetime
    ends_at: datetime
    updated_at: datetime


_RANK = {str(s): s.rank for s in Severity}
_x = external_alerts
_PUSHED = sa.select(_x.c.fingerprint, _x.c.severity, _x.c.annotations, _x.c.generator_url,
                    _x.c.starts_at, _x.c.ends_at, _x.c.updated_at)
#: Fingerprints asked for by ``IN (…)``, at most; more read the whole table (it holds
#: only the open pushed alerts, and the listing reads every active alert anyway).
_BY_KEY = 500


def pushed_alerts(timeline: Timeline, fingerprints: Iterable[str]) -> dict[str, list[Pushed]]:
    """The open pushed alerts of these alert instances, by fingerprint: only the columns
    the listing shows, in one query (labels are the alert record's)."""
    wanted = set(fingerprints)
    if not wanted:
        return {}
    query = _PUSHED
    if len(wanted) <= _BY_KEY:
        query = query.where(_x.c.fingerprint.in_(sorted(wanted)))
    out: dict[str, list[Pushed]] = {}
    with timeline.read() as conn:
        for fp, severity, notes, url, starts, ends, updated in conn.execute(query):
            if fp in wanted:
                out.setdefault(fp, []).append(Pushed(_RANK.get(severity, 0), dict(notes or {}),
                                                     url or "", starts, ends, updated))
    return out


def _pushed_view(kept: Sequence[Pushed], now: datetime) -> tuple[Pushed, Times]:
    """A pushed alert instance as its sender sent it: the alert the engine follows (the
    highest severity still firing, as :func:`~alert_jobs.families.external.check.settle`
    picks) for annotations and link, and the span of those still firing."""
    if len(kept) == 1:
        only = kept[0]
        return only, Times(only.starts_at, only.ends_at, only.updated_at)
    live = [s for s in kept if s.ends_at > now] or list(kept)
    top = max(live, key=lambda s: (s.rank, s.updated_at))
    return top, Times(min(s.starts_at for s in live), max(s.ends_at for s in live),
                      max(s.updated_at for s in live))


class _Inhibitors:
    """Which firing alert inhibits an inhibited one (Alertmanager names its fingerprint;
    the router only says why): its inhibit rules' indexes, searched for the source."""

    def __init__(self, router: Router, firing: Sequence[AlertRecord]):
        sources = [(alert_labels(a, a.severity), a.fingerprint) for a in firing]
        self.fingerprint_of = {id(labels): fp for labels, fp in sources}
        self.inhibition = Inhibition(router.inhibit_rules, (labels for labels, _ in sources))

    def of(self, labels: dict[str, str]) -> list[str]:
        for rule, index in self.inhibition.rules:
            for source in index.get(tuple(labels.get(k, "") for k in rule.equal), ()):
                if rule.mutes(labels, [source]):
                    return [self.fingerprint_of[id(source)]]
        return []


def listed_alerts(timeline: Timeline, rules: RulesFile, query: Query,
                  now: datetime | None = None) -> list[Listed]:
    """Every firing or recovering alert the query selects, in Alertmanager's shape,
    sorted by fingerprint (blocking: reads the timeline)."""
    now = now or utcnow()
    active = timeline.alerts.list()
    router = rules.router()
    by_name = {rule.name: rule for rule in rules.rules()}
    selected = [(record, alert_labels(record, record.severity)) for record in active
                if record.state.is_active]  # pending: Alertmanager never hears of it
    selected = [(record, labels) for record, labels in selected
                if all(m.matches(labels) for m in query.matchers)]
    # Pushed alerts (the external family) have no rule in the file: what their sender
    # sent is kept beside them, and their receivers are the family's.
    pushed = pushed_alerts(timeline, (record.fingerprint for record, _ in selected
                                      if record.rule not in by_name))
    pushed_receivers = tuple(rules.section(ExternalSettings).receivers)
    direct: dict[str, tuple[str, ...]] = {}
    kept: list[tuple[AlertRecord, dict[str, str], list[RouteTarget]]] = []
    for record, labels in selected:
        if record.fingerprint in pushed:
            receivers = pushed_receivers
        else:
            if record.rule not in direct:
                direct[record.rule] = rules.direct_receivers(record.rule)
            receivers = direct[record.rule]
        targets = router.targets(labels, receivers)
        if any(query.wants_receiver(t.receiver) for t in targets):
            kept.append((record, labels, targets))
    rows = alert_rows(timeline, rules, now, alerts=[r for r, _, _ in kept], active=active)
    inhibitors: _Inhibitors | None = None
    listed: list[Listed] = []
    for (record, labels, targets), row in zip(kept, rows, strict=True):
        silenced_by = [m.silence_id for m in row.mutes if m.kind == "silence" and m.silence_id]
        inhibited_by: list[str] = []
        if any(m.kind == "inhibited" for m in row.mutes):
            if inhibitors is None:
                inhibitors = _Inhibitors(router, [a for a in active
                                                  if a.state is AlertState.FIRING])
            inhibited_by = inhibitors.of(labels)
        status = {"state": SUPPRESSED if silenced_by or inhibited_by else ACTIVE,
                  "silencedBy": silenced_by, "inhibitedBy": inhibited_by, "mutedBy": []}
        if not query.wants_status(status):
            continue
        rule = by_name.get(record.rule)
        if record.fingerprint in pushed:
            top, times = _pushed_view(pushed[record.fingerprint], now)
            notes = dict(top.annotations)
            generator = top.generator_url or row.run_url or ""
        else:
            starts = record.fired_at or record.active_since or now
            times = Times(starts, ends_at(record, evaluation_interval(rules, rule),
                                          rule.keep_firing_for if rule else timedelta(0), now),
                          record.last_eval_at or starts)
            notes = _check_notes(row, rule)
            generator = row.run_url or ""
        body = {
            "labels": labels,
            "annotations": {**notes, **_our_mutes(row)},
            "startsAt": format_time(times.starts),
            "endsAt": format_time(times.ends),
            "updatedAt": format_time(times.updated),
            "generatorURL": generator,
            "fingerprint": record.fingerprint,
            "receivers": [{"name": name} for name in _unique(t.receiver for t in targets)],
            "status": status,
        }
        listed.append(Listed(record, labels, targets, body))
    listed.sort(key=lambda item: item.record.fingerprint)
    return listed


def _unique(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))


# ----- groups -----------------------------------------------------------------------


def alert_groups(listed: Iterable[Listed], query: Query) -> list[dict[str, Any]]:
    """Alertmanager's ``alertGroups``: one group per route, receiver and ``group_by``
    values (the notifier's group key), its alerts sorted by labels; groups sorted by
    labels, then receiver."""
    groups: dict[str, tuple[RouteTarget, dict[str, str], list[Listed]]] = {}
    for item in listed:
        for target in item.targets:
            if not query.wants_receiver(target.receiver):
                continue
            key = target.group_key(item.labels)
            if key not in groups:
                labels = {k: v for k, v in target.group_labels(item.labels).items() if v}
                groups[key] = (target, labels, [])
            groups[key][2].append(item)
    kept = [(target, labels, members) for target, labels, members in groups.values()
            if query.muted or not all(m.suppressed for m in members)]
    kept.sort(key=lambda g: (sorted(g[1].items()), g[0].receiver))
    out = []
    for target, labels, members in kept:
        members.sort(key=lambda m: sorted(m.labels.items()))
        out.append({"labels": labels, "routeLabels": {},
                    "receiver": {"name": target.receiver},
                    "alerts": [m.body for m in members]})
    return out


# ----- endpoints --------------------------------------------------------------------


def routes(auth: ApiAuth, get_timeline: Callable[[], Timeline],
           get_rules: Callable[[], RulesFile]) -> list[Route]:
    def rules() -> RulesFile:
        try:
            return get_rules()
        except RulesError:  # a broken rules file must not hide the alerts
            return RulesFile()

    async def get_alerts(request: Request, caller: str) -> Response:
        query = Query.of(request)
        listed = await run_in_threadpool(listed_alerts, get_timeline(), rules(), query)
        return JSONResponse([item.body for item in listed])

    async def get_groups(request: Request, caller: str) -> Response:
        query = Query.of(request)
        listed = await run_in_threadpool(listed_alerts, get_timeline(), rules(), query)
        return JSONResponse(alert_groups(listed, query))

    return [Route("/api/v2/alerts", api(auth, get_alerts), methods=["GET"]),
            Route("/api/v2/alerts/groups", api(auth, get_groups), methods=["GET"])]
