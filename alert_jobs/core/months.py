"""Calendar months as reports name them (``2026-10``): the alert review and the SLO
budget report share these, so both agree on what a month is."""

from __future__ import annotations

from datetime import UTC, datetime


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """``2026-10`` → [2026-10-01, 2026-11-01) in UTC; a clear error for anything else."""
    try:
        start = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(f"expected a month like 2026-10, got {month!r}") from None
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 \
        else start.replace(month=start.month + 1)
    return start, end


def previous_month(now: datetime) -> str:
    """The month before ``now``'s own calendar date (in ``now``'s timezone: pass a UTC
    time for a UTC month)."""
    first = now.replace(day=1)
    return f"{first.year - 1}-12" if first.month == 1 else f"{first.year}-{first.month - 1:02d}"


def current_month(now: datetime) -> str:
    """The UTC month ``now`` falls in."""
    return now.astimezone(UTC).strftime("%Y-%m")
