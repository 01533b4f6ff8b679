"""Routing as Alertmanager users know it: a route tree, grouping keys, inhibition. Pure.

* The tree is walked depth-first: a child whose matchers all match takes the alert;
  the walk stops at the first matching child unless it has ``continue: true``; a node
  none of whose children match handles the alert itself. Unset settings are inherited.
* Alerts that reach the same route and receiver with equal ``group_by`` label values
  share a group key; the notifier sends one message per group per ``group_interval``.
* Inhibition: an alert matching a rule's ``target_matchers`` is muted while a firing
  alert matching its ``source_matchers`` has equal values for every ``equal`` label (a
  missing label equals an empty one). An alert matching both sides is never muted by
  alerts that also match both sides, so an alert never inhibits itself.
* Time intervals (Alertmanager's): a route's ``mute_time_intervals`` and
  ``active_time_intervals`` are its own, never inherited by its children (the root may
  have none); :meth:`Router.time_muted` says whether a target sends nothing now.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from alert_jobs.core.model import Matcher
from alert_jobs.core.time_intervals import TimeInterval, time_mute


@dataclass(frozen=True)
class Escalation:
    """While an alert fires un-acked, after ``after`` also notify ``receiver``."""

    after: timedelta
    receiver: str


@dataclass(frozen=True)
class RouteSpec:
    """One node of the route tree as the rules file gives it; ``None`` inherits."""

    receiver: str | None = None
    matchers: tuple[Matcher, ...] = ()
    continue_: bool = False
    group_by: tuple[str, ...] | None = None
    group_wait: timedelta | None = None
    group_interval: timedelta | None = None
    repeat_interval: timedelta | None = None
    escalation: tuple[Escalation, ...] = ()
    routes: tuple[RouteSpec, ...] = ()
    mute_time_intervals: tuple[str, ...] = ()  # this route's own: not inherited
    active_time_intervals: tuple[str, ...] = ()


@dataclass(frozen=True)
class RoutingDefaults:
    """The root route's settings (``defaults:`` in the rules file)."""

    receivers: tuple[str, ...] = ("console",)
    group_by: tuple[str, ...] = ("alertname",)
    group_wait: timedelta = timedelta(0)
    group_interval: timedelta = timedelta(minutes=5)
    repeat_interval: timedelta = timedelta(hours=4)
    max_alerts: int = 100  # alerts listed in one group message; the rest are counted
    external_url: str = "http://127.0.0.1:3000"  # the Dagster UI, for links in messages


@dataclass(frozen=True)
class RouteTarget:
    """Where one alert goes from one matching route, with the timers that apply."""

    route_id: str
    receiver: str
    group_by: tuple[str, ...]
    group_wait: timedelta
    group_interval: timedelta
    repeat_interval: timedelta
    escalation: tuple[Escalation, ...] = ()
    mute_time_intervals: tuple[str, ...] = ()
    active_time_intervals: tuple[str, ...] = ()

    @property
    def time_limited(self) -> bool:
        """Whether time intervals can mute this target at all."""
        return bool(self.mute_time_intervals or self.active_time_intervals)

    def group_labels(self, labels: dict[str, str]) -> dict[str, str]:
        if self.group_by == ("...",):
            return dict(labels)
        return {name: labels.get(name, "") for name in self.group_by}

    def group_key(self, labels: dict[str, str]) -> str:
        """Stable per (route, receiver, group labels); Alertmanager's ``{}:{a="b"}`` shape."""
        inner = ",".join(f'{k}="{v}"' for k, v in sorted(self.group_labels(labels).items()))
        return f"{self.route_id}:{self.receiver}:{{{inner}}}"


@dataclass(frozen=True)
class _Node:
    route_id: str
    matchers: tuple[Matcher, ...]
    cont: bool
    target: RouteTarget
    children: tuple[_Node, ...] = field(default_factory=tuple)


class Router:
    """Compiled routing of one rules file: receivers for an alert, inhibition checks."""

    def __init__(self, defaults: RoutingDefaults | None = None, route: RouteSpec | None = None,
                 inhibit_rules: Sequence[CompiledInhibit] = (),
                 time_intervals: Mapping[str, TimeInterval] | None = None):
        d = defaults or RoutingDefaults()
        first = (d.receivers or ("console",))[0]
        root = route or RouteSpec(receiver=first)
        base = RouteTarget(
            route_id="root", receiver=root.receiver or first,
            group_by=tuple(d.group_by), group_wait=d.group_wait,
            group_interval=d.group_interval, repeat_interval=d.repeat_interval,
        )
        self.root = self._compile(root, base, "root")
        self.defaults_target = base
        self.defaults = d
        self.has_routes = route is not None
        self.inhibit_rules = list(inhibit_rules)
        self.time_intervals = dict(time_intervals or {})

    def _compile(self, route: RouteSpec, parent: RouteTarget, route_id: str) -> _Node:
        target = RouteTarget(
            route_id=route_id,
            receiver=route.receiver or parent.receiver,
            group_by=tuple(route.group_by) if route.group_by is not None else parent.group_by,
            group_wait=route.group_wait if route.group_wait is not None else parent.group_wait,
            group_interval=(route.group_interval if route.group_interval is not None
                            else parent.group_interval),
            repeat_interval=(route.repeat_interval if route.repeat_interval is not None
                             else parent.repeat_interval),
            escalation=route.escalation or (parent.escalation if route_id != "root" else ()),
            # Alertmanager: a route's time intervals are its own, not its parent's.
            mute_time_intervals=route.mute_time_intervals,
            active_time_intervals=route.active_time_intervals,
        )
        children = tuple(self._compile(child, target, f"{route_id}.{i}")
                         for i, child in enumerate(route.routes))
        return _Node(route_id, route.matchers, route.continue_, target, children)

    def targets(self, labels: dict[str, str],
                direct_receivers: Sequence[str] | None = None) -> list[RouteTarget]:
        """Every (route, receiver) an alert with ``labels`` goes to.

        ``direct_receivers`` (a rule's own ``receivers:``) bypass the tree, keeping the
        default grouping and timers: the simple case needs no route block at all.
        """
        if not direct_receivers and not self.has_routes:
            direct_receivers = self.defaults.receivers
        if direct_receivers:
            base = self.defaults_target
            return [RouteTarget(f"rule:{labels.get('alertname', '')}", r, base.group_by,
                                base.group_wait, base.group_interval, base.repeat_interval)
                    for r in direct_receivers]
        return [node.target for node in _walk(self.root, labels)]

    def time_muted(self, target: RouteTarget, now: datetime) -> str | None:
        """Why ``target`` sends nothing at ``now`` because of its route's time intervals
        (``"muted by time interval night on route root.0"``), or None."""
        if not target.time_limited:
            return None
        why = time_mute(target.mute_time_intervals, target.active_time_intervals,
                        self.time_intervals, now)
        return f"{why} on route {target.route_id}" if why else None

    def all_time_muted(self, labels: dict[str, str], receivers: Sequence[str] | None,
                       now: datetime) -> str | None:
        """Why an alert with ``labels`` reaches no one at ``now``: every target it routes
        to is muted by its route's time intervals (the reason of the first), or None.
        The engine then treats the alert as muted, as it does a silenced one: nothing is
        counted as sent, so once the window ends the next evaluation sends it, as
        Alertmanager's next group flush would."""
        if not self.time_intervals:
            return None
        reasons = [self.time_muted(target, now) for target in self.targets(labels, receivers)]
        if reasons and all(reasons):
            return reasons[0]
        return None

    def inhibited_by(self, labels: dict[str, str],
                     firing: Iterable[dict[str, str]]) -> str | None:
        """Why an alert with ``labels`` is inhibited by one of the ``firing`` alerts, or None."""
        return self.inhibition(firing).inhibited_by(labels)

    def inhibition(self, firing: Iterable[dict[str, str]]) -> Inhibition:
        """The inhibit rules against these ``firing`` alerts, for checking many alerts."""
        return Inhibition(self.inhibit_rules, firing)


def _walk(node: _Node, labels: dict[str, str]) -> list[_Node]:
    matched: list[_Node] = []
    for child in node.children:
        if all(m.matches(labels) for m in child.matchers):
            matched.extend(_walk(child, labels))
            if not child.cont:
                break
    return matched or [node]


@dataclass(frozen=True)
class CompiledInhibit:
    name: str
    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...]

    def _matches(self, matchers: tuple[Matcher, ...], labels: dict[str, str]) -> bool:
        return all(m.matches(labels) for m in matchers)

    def mutes(self, labels: dict[str, str], firing: list[dict[str, str]]) -> str | None:
        if not self._matches(self.target, labels):
            return None
        target_is_source_too = self._matches(self.source, labels)
        for source in firing:
            if source == labels or not self._matches(self.source, source):
                continue
            if target_is_source_too and self._matches(self.target, source):
                continue  # two-sided matches never inhibit each other (no self-inhibition)
            if all(source.get(k, "") == labels.get(k, "") for k in self.equal):
                name = f" {self.name}" if self.name else ""
                who = source.get("alertname", "?")
                return f"inhibited{name} by firing {who} " + _short_labels(source, self.equal)
        return None


class Inhibition:
    """Inhibit rules against one set of firing alerts, indexed: each rule's sources are
    filed by the values of its ``equal`` labels, so an alert is compared with the
    sources that share its values instead of every firing alert (5,000 alerts × 5,000
    firing would be 25 million comparisons). Same answers as
    :meth:`CompiledInhibit.mutes` over the whole list, in the same order."""

    def __init__(self, rules: Sequence[CompiledInhibit], firing: Iterable[dict[str, str]]):
        firing = list(firing)
        self.rules: list[tuple[CompiledInhibit, dict[tuple[str, ...], list[dict[str, str]]]]] = []
        for rule in rules:
            index: dict[tuple[str, ...], list[dict[str, str]]] = {}
            for source in firing:
                if rule._matches(rule.source, source):
                    index.setdefault(tuple(source.get(k, "") for k in rule.equal),
                                     []).append(source)
            self.rules.append((rule, index))

    def inhibited_by(self, labels: dict[str, str]) -> str | None:
        for rule, index in self.rules:
            sources = index.get(tuple(labels.get(k, "") for k in rule.equal))
            if sources:
                reason = rule.mutes(labels, sources)
                if reason:
                    return reason
        return None


def _short_labels(labels: dict[str, str], keys: Sequence[str]) -> str:
    shown = {k: labels.get(k, "") for k in keys} if keys else {
        k: v for k, v in labels.items() if k not in ("alertname",)}
    return "{" + ", ".join(f"{k}={v}" for k, v in sorted(shown.items())) + "}"

