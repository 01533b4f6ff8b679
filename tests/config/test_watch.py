"""RulesWatcher: the file is looked at by stat, parsed only on change, in the background;
a broken edit keeps the last good snapshot (marked fallback) and says why."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest

from alert_jobs.config import RulesError, RulesWatcher, last_good_path, parse_rules

GOOD = "defaults: {receivers: [console]}\n"
TWO = GOOD + "checks:\n  heartbeat:\n    - {name: a, period: 1h}\n    - {name: b, period: 1h}\n"


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    return tmp_path


def names(watcher: RulesWatcher) -> list[str]:
    return [r.name for r in watcher().rules()]


def test_unchanged_file_is_not_parsed_again_and_a_change_is(tmp_path: Path) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text(GOOD)
    watcher = RulesWatcher(path)
    first = watcher.snapshot
    assert first.status == "ok" and last_good_path(path).exists()
    assert watcher.refresh() is first  # stat only: same snapshot object
    path.write_text(TWO)
    assert names(watcher) == []  # nothing happens on the request path
    second = watcher.refresh()
    assert second is not first and names(watcher) == ["a", "b"]
    # an in-place edit of the same size is seen by its mtime
    path.write_text(TWO.replace("name: b", "name: c"))
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 5_000_000_000))
    watcher.refresh()
    assert names(watcher) == ["a", "c"]


def test_broken_edit_keeps_the_last_good_snapshot_with_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text(TWO)
    watcher = RulesWatcher(path)
    derived = watcher.derive("count", lambda rules: len(rules.rules()))
    path.write_text(TWO + "bogus_key: 1\n")
    with caplog.at_level(logging.WARNING, logger="alert_jobs.rules"):
        snap = watcher.refresh()
    assert snap.fallback and snap.status == "fallback"
    assert names(watcher) == ["a", "b"] and derived() == 2
    assert any("bogus_key" in p for p in snap.problems())
    assert "bogus_key" in caplog.text and "keeping the last good rules" in caplog.text
    path.write_text(GOOD + "checks:\n  heartbeat:\n    - {name: z, period: 1h}\n")
    snap = watcher.refresh()
    assert snap.status == "ok" and names(watcher) == ["z"] and derived() == 1


def test_start_on_a_broken_file_uses_the_last_good_copy_or_raises(tmp_path: Path) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text("checks: [\n")
    with pytest.raises(RulesError):  # never good: nothing to fall back to
        RulesWatcher(path)
    path.write_text(TWO)
    RulesWatcher(path)  # good once: the copy is kept
    path.write_text("checks: [\n")
    watcher = RulesWatcher(path)
    assert watcher.snapshot.fallback and names(watcher) == ["a", "b"]


def test_background_thread_publishes_changes(tmp_path: Path) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text(GOOD)
    watcher = RulesWatcher(path, interval=0.05).start()
    try:
        path.write_text(TWO)
        deadline = time.monotonic() + 10
        while names(watcher) != ["a", "b"]:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        watcher.stop()


def test_a_load_function_is_polled_and_a_failing_one_keeps_the_rules() -> None:
    holder = {"rules": parse_rules(GOOD)}

    def load():  # type: ignore[no-untyped-def]
        if holder["rules"] is None:
            raise ValueError("broken")
        return holder["rules"]

    watcher = RulesWatcher(load=load)
    first = watcher.snapshot
    assert watcher.refresh() is first  # same object: nothing new
    holder["rules"] = parse_rules(TWO)
    assert names(watcher) == [] and watcher.refresh().status == "ok"
    assert names(watcher) == ["a", "b"]
    holder["rules"] = None
    assert watcher.refresh().fallback and names(watcher) == ["a", "b"]
