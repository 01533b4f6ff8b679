"""The rules a long-running process answers with, kept current off the request path.

``alert-jobs serve`` used to re-parse ``alerts.yaml`` every 2 s under a lock inside the
ping handler: with 1,000 declared checks a parse takes about a second, so every request
behind it waited. :class:`RulesWatcher` moves that work to one background thread:

* the file is looked at (``stat``: mtime, size, inode — no read, no parse) at most every
  ``interval`` seconds, and parsed only when one of them changed (an editor that
  replaces the file changes the inode; an in-place write changes mtime or size);
* a good parse is published as a new immutable :class:`RulesSnapshot` by swapping one
  attribute (atomic under the GIL): a request reads ``watcher.snapshot`` once and works
  with that object, never with half of an old and half of a new file;
* a broken edit keeps the current snapshot, marked ``fallback`` with the problems, and
  logs a warning naming them (every problem: file, YAML path, line); fixing the file
  clears the mark at the next look;
* at start-up a broken file falls back to the last good copy
  (:mod:`alert_jobs.config.last_good`), the same copy the Dagster side uses; without one
  the :class:`~alert_jobs.config.RulesError` is raised, as before.

Values derived from the rules (the heartbeat family's slug → check map) are computed by
:meth:`RulesWatcher.derive` functions in the same background thread, once per snapshot,
so the request path finds them ready.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alert_jobs.config.last_good import load_rules_or_last_good, save_last_good
from alert_jobs.config.loader import RulesError, load_rules
from alert_jobs.config.rules_file import RulesFile

log = logging.getLogger("alert_jobs.rules")
DEFAULT_INTERVAL = 1.0


@dataclass(frozen=True)
class RulesSnapshot:
    """One parsed rules file and what was derived from it; never changed once published."""

    rules: RulesFile
    #: set while ``rules`` is not what the file says (the file is broken): its problems
    error: Exception | None = None
    derived: Mapping[str, Any] = field(default_factory=dict)

    @property
    def fallback(self) -> bool:
        return self.error is not None

    @property
    def status(self) -> str:
        """``ok`` or ``fallback``, as ``/healthz`` reports it."""
        return "fallback" if self.fallback else "ok"

    def problems(self) -> list[str]:
        return problem_lines(self.error) if self.error is not None else []


def problem_lines(exc: Exception) -> list[str]:
    """Every problem of a rules error, one line each (file, YAML path, line)."""
    return exc.lines() if isinstance(exc, RulesError) else [str(exc)]


_Stat = tuple[int, int, int] | None


def _stat(path: Path) -> _Stat:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class RulesWatcher:
    """The current :class:`RulesSnapshot` of a rules file (or of a ``load`` function).

    ``RulesWatcher(path)`` watches a file by ``stat``; ``RulesWatcher(load=fn)`` calls
    ``fn`` every ``interval`` seconds in the background and publishes a new snapshot
    when it returns a different object (tests hand rules in this way). Calling the
    watcher returns the current rules, so it can stand where a ``get_rules`` callable
    is expected. :meth:`start` starts the background thread; :meth:`stop` ends it.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *,
                 load: Callable[[], RulesFile] | None = None,
                 interval: float = DEFAULT_INTERVAL):
        if (path is None) == (load is None):
            raise ValueError("give a rules file path or a load function, not both")
        self.path = Path(path) if path is not None else None
        self._load = load
        self.interval = interval
        self._derive: dict[str, Callable[[RulesFile], Any]] = {}
        self._lock = threading.Lock()  # one refresh at a time (thread or caller)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen: _Stat = None
        self._on_stop: list[Callable[[], None]] = []
        self.snapshot = self._first()

    # ----- what callers use ----------------------------------------------------------

    def __call__(self) -> RulesFile:
        return self.snapshot.rules

    def derive(self, name: str, fn: Callable[[RulesFile], Any]) -> Callable[[], Any]:
        """Compute ``fn(rules)`` once per snapshot, in the background; returns a getter
        for the current value (computed now for the current snapshot)."""
        with self._lock:
            self._derive[name] = fn
            snap = self.snapshot
            self.snapshot = RulesSnapshot(snap.rules, snap.error,
                                          {**snap.derived, name: fn(snap.rules)})

        def current() -> Any:
            return self.snapshot.derived[name]

        return current

    def start(self) -> RulesWatcher:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="rules-watcher",
                                            daemon=True)
            self._thread.start()
        return self

    def on_stop(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` when the watcher stops: the server's shutdown, which is where the
        users of the rules (e.g. the ping writer thread) end too."""
        self._on_stop.append(fn)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        for fn in self._on_stop:
            try:
                fn()
            except Exception:  # one failing hook must not keep the others from running
                log.exception("stopping %r failed", fn)

    # ----- the background side -------------------------------------------------------

    def _first(self) -> RulesSnapshot:
        if self.path is None:
            assert self._load is not None
            return RulesSnapshot(self._load())
        self._seen = _stat(self.path)
        loaded = load_rules_or_last_good(self.path)  # raises when neither is good
        if loaded.error is not None:
            self._warn(loaded.error, "using the last good copy")
        return RulesSnapshot(loaded.rules, loaded.error)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.refresh()
            except Exception:  # the watcher must outlive anything a load throws
                log.exception("reloading the rules failed; keeping the current rules")

    def refresh(self, force: bool = False) -> RulesSnapshot:
        """Look once: publish a new snapshot if the source changed (``force``: parse even
        if the file looks unchanged). Returns the current snapshot."""
        with self._lock:
            current = self.snapshot
            if self.path is not None:
                seen = _stat(self.path)
                if seen == self._seen and not force:
                    return current
                self._seen = seen
                try:
                    rules = load_rules(self.path)
                except RulesError as exc:
                    return self._keep(current, exc)
                save_last_good(self.path)  # what the Dagster side and a restart fall back to
            else:
                assert self._load is not None
                try:
                    rules = self._load()
                except (RulesError, ValueError) as exc:
                    return self._keep(current, exc)
                if rules is current.rules and not current.fallback:
                    return current
            try:
                derived = {name: fn(rules) for name, fn in self._derive.items()}
            except ValueError as exc:  # e.g. a heartbeat slug declared twice
                return self._keep(current, exc)
            if current.fallback:
                log.warning("rules file %s is valid again; using it", self._where())
            self.snapshot = RulesSnapshot(rules, None, derived)
            return self.snapshot

    def _keep(self, current: RulesSnapshot, exc: Exception) -> RulesSnapshot:
        if current.error is None or problem_lines(current.error) != problem_lines(exc):
            self._warn(exc, "keeping the last good rules")
        self.snapshot = RulesSnapshot(current.rules, exc, current.derived)
        return self.snapshot

    def _where(self) -> str:
        return str(self.path) if self.path is not None else "(rules source)"

    def _warn(self, exc: Exception, doing: str) -> None:
        lines = problem_lines(exc)
        log.warning("rules file %s is invalid (%d problem(s)); %s until it is fixed:\n  %s",
                    self._where(), len(lines), doing, "\n  ".join(lines))
