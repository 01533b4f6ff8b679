"""The demo database for tests that seed it at a fixed time: seeded once per test
process and time, then copied.

Seeding writes about 250,000 rows (3.5 s of CPU); what it writes depends only on
``now`` and ``slo_burst`` (every generator is seeded by the time itself), so a copy
of an earlier seed at the same time is the same database. Tests that seed at the
real current time keep calling :func:`alert_jobs.demo.data.seed`.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from datetime import datetime
from pathlib import Path

from alert_jobs.demo.data import seed

_seeded: dict[tuple[datetime, bool], Path] = {}


def seeded_copy(path: Path, *, now: datetime, slo_burst: bool = True) -> Path:
    """The demo database as ``seed(path, now=now, slo_burst=slo_burst)`` writes it."""
    key = (now, slo_burst)
    if key not in _seeded:
        folder = Path(tempfile.mkdtemp(prefix="alert-jobs-seed-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        _seeded[key] = seed(folder / "demo.db", now=now, slo_burst=slo_burst)
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_seeded[key], path)
    return path
