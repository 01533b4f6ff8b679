"""Where a benchmark writes its figures: ``benchmarks/results/<name>.json``, stamped."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def write_json(path: Path, results: list[Any], skipped: dict[str, str] | None = None) -> None:
    """``{"generated_at", "results"[, "skipped"]}`` as indented JSON (values that JSON
    cannot hold, e.g. datetimes, as text)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body: dict[str, Any] = {"generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
                            "results": results}
    if skipped is not None:
        body["skipped"] = skipped
    path.write_text(json.dumps(body, indent=2, default=str) + "\n")
