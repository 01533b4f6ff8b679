"""What mutes an alert, for the responder's page: the silence index and the inhibition
index give exactly the answers of checking everything against everything."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from alert_jobs.core.model import AlertRecord, AlertState, Matcher, Severity, Silence
from alert_jobs.core.muting import SilenceIndex, muted_alerts, mutes
from alert_jobs.core.routing import CompiledInhibit, Inhibition

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
OPS = ("=", "!=", "=~", "!~")


def random_labels(rng: random.Random) -> dict[str, str]:
    labels = {"alertname": f"rule_{rng.randrange(6)}",
              "severity": rng.choice(["warning", "critical"])}
    for name in ("team", "host", "env"):
        if rng.random() < 0.8:
            labels[name] = f"{name[0]}{rng.randrange(5)}"
    return labels


def random_matcher(rng: random.Random) -> Matcher:
    name = rng.choice(["alertname", "team", "host", "env", "missing"])
    op = rng.choice(OPS)
    value = f"{name[0]}{rng.randrange(5)}" if name != "alertname" else f"rule_{rng.randrange(6)}"
    if op in ("=~", "!~"):
        value = rng.choice([value, value[:1] + ".*", "", f"({value}|x)"])
    return Matcher(name, op, value)


def test_the_silence_index_finds_exactly_what_brute_force_finds() -> None:
    rng = random.Random(7)
    silences = [Silence(f"s{i}", tuple(random_matcher(rng) for _ in range(rng.randint(1, 3))),
                        NOW - timedelta(hours=1), NOW + timedelta(hours=1), "bob", "c")
                for i in range(300)]
    label_sets = [random_labels(rng) for _ in range(400)]
    index = SilenceIndex(silences)
    expected = [{s.id for s in silences if s.matches(labels)} for labels in label_sets]
    assert [{s.id for s in found} for found in index.matching_all(label_sets)] == expected
    assert [{s.id for s in index.matching(labels)} for labels in label_sets] == expected
    assert sum(map(len, expected)) > 100  # the case is not trivially empty
    assert index.unkeyed and index.by_label  # both paths are exercised


def test_the_silence_index_files_a_silence_under_its_rarest_equality_matcher() -> None:
    common = [Silence(f"t{i}", (Matcher("team", "=", "pay"), Matcher("host", "=", f"h{i}")),
                      NOW, NOW + timedelta(hours=1), "bob", "c") for i in range(5)]
    index = SilenceIndex(common)
    assert ("team", "pay") not in index.by_label
    assert [s.id for s in index.matching({"team": "pay", "host": "h3"})] == ["t3"]


def test_matcher_select_agrees_with_matches() -> None:
    rng = random.Random(3)
    label_sets = [random_labels(rng) for _ in range(200)]
    for _ in range(100):
        matcher = random_matcher(rng)
        assert matcher.select(label_sets) == [i for i, labels in enumerate(label_sets)
                                              if matcher.matches(labels)]


def test_the_inhibition_index_agrees_with_checking_every_firing_alert() -> None:
    rng = random.Random(11)
    rules = [CompiledInhibit("", (Matcher("alertname", "=", "rule_0"),),
                             (Matcher("severity", "=", "warning"),), ("team",)),
             CompiledInhibit("db", (Matcher("env", "=~", "e[01]"),),
                             (Matcher("env", "=~", "e.*"),), ("host", "env")),
             CompiledInhibit("all", (Matcher("team", "=", "t1"),),
                             (Matcher("team", "!=", "t1"),), ())]
    firing = [random_labels(rng) for _ in range(300)]
    inhibition = Inhibition(rules, firing)
    hits = 0
    for labels in [random_labels(rng) for _ in range(300)] + firing[:50]:
        brute = next((r for rule in rules if (r := rule.mutes(labels, firing))), None)
        assert inhibition.inhibited_by(labels) == brute
        hits += brute is not None
    assert hits > 20


def test_mutes_lists_every_suppression_in_the_engines_order() -> None:
    record = AlertRecord("fp", "dead_letters", {"team": "pay"}, AlertState.FIRING,
                         Severity.CRITICAL, acked_at=NOW, acked_by="alice",
                         snoozed_until=NOW + timedelta(hours=1))
    silence = Silence("s1", (Matcher("team", "=", "pay"),), NOW - timedelta(minutes=5),
                      NOW + timedelta(hours=2), "bob", "db swap")
    found = mutes(record, NOW, [silence], rule_disabled=True, inhibited="inhibited by x")
    assert [(m.kind, m.until) for m in found] == [
        ("disabled", None), ("silence", silence.ends_at), ("snooze", record.snoozed_until),
        ("ack", None), ("inhibited", None)]
    assert found[1].text == "silence by bob: db swap" and found[1].silence_id == "s1"
    quiet = AlertRecord("fp2", "dead_letters", {}, AlertState.FIRING, Severity.WARNING)
    assert mutes(quiet, NOW, []) == []
    assert muted_alerts(silence, [record, quiet]) == [record]
