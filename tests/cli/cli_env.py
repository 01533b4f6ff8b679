"""What the command-line tests share: run ``alert-jobs`` in-process against one
timeline and rules file, and read back its exit code and output."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from alert_jobs.cli.main import main
from alert_jobs.store import Timeline


@dataclass
class Result:
    rc: int
    out: str
    err: str


@dataclass
class CliEnv:
    url: str
    rules: Path
    timeline: Timeline
    capsys: pytest.CaptureFixture[str]

    def run(self, *args: str) -> Result:
        self.capsys.readouterr()
        rc = main(["--database-url", self.url, "--rules", str(self.rules), *args])
        out, err = self.capsys.readouterr()
        return Result(rc, out, err)
