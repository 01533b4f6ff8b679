"""A broken rules file must not silence every alert: keep the last good copy.

Before this, one typo in ``alerts.yaml`` made the whole code location fail to load, so
no check ran and nothing paged — the worst time to be quiet. Now every successful load
saves a copy under ``$DAGSTER_HOME``; a failed load falls back to that copy (the checks
keep running with the previous rules), and the heartbeat family's sensor raises a
``rules_file_invalid`` alert naming every problem (file, YAML path, line) until the file
is fixed. Without a good copy yet (first deploy), the error is raised as before.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from alert_jobs.config.loader import RulesError, load_rules, parse_rules
from alert_jobs.config.rules_file import RulesFile


def last_good_path(rules_file: str | os.PathLike[str]) -> Path:
    """Where the last good copy of ``rules_file`` lives (one per rules file path)."""
    home = Path(os.environ.get("DAGSTER_HOME") or ".dagster_home")
    key = hashlib.sha256(str(Path(rules_file).resolve()).encode()).hexdigest()[:12]
    return home / f"rules-last-good-{key}.yaml"


@dataclass(frozen=True)
class LoadedRules:
    rules: RulesFile
    error: RulesError | None = None  # set when ``rules`` is the last good copy

    @property
    def from_last_good(self) -> bool:
        return self.error is not None


def load_rules_or_last_good(path: str | os.PathLike[str]) -> LoadedRules:
    """The rules file, else its last good copy (with the error); raises if neither."""
    copy = last_good_path(path)
    try:
        rules = load_rules(path)
    except RulesError as exc:
        try:
            text = copy.read_text(encoding="utf-8")
        except OSError:
            raise exc from None
        return LoadedRules(parse_rules(text, f"{path} (last good copy)"), exc)
    save_last_good(path)
    return LoadedRules(rules)


def save_last_good(path: str | os.PathLike[str]) -> None:
    """Copy ``path`` (just loaded and valid) to its last good copy, if it differs.

    A read-only home only costs the fallback, never the load: errors are ignored.
    """
    copy = last_good_path(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
        if not copy.exists() or copy.read_text(encoding="utf-8") != text:
            copy.parent.mkdir(parents=True, exist_ok=True)
            tmp = copy.with_suffix(".tmp")
            tmp.write_text(text, encoding="utf-8")
            # the file may hold inline secrets: the copy is no more readable than it
            shutil.copymode(path, tmp)
            tmp.replace(copy)  # atomic: a reader never sees half a file
    except OSError:
        pass
