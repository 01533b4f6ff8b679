"""Numbers the way a person reads them in an alert: ``1,000``, ``0.25``, ``12.5k`` never."""

from __future__ import annotations

import math


def fmt_number(value: float | None) -> str:
    """Thousands separators for whole numbers, up to 4 significant digits otherwise."""
    if value is None:
        return "nothing"
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "infinity" if value > 0 else "-infinity"
    if float(value).is_integer():
        return f"{int(value):,}"
    if abs(value) >= 1000:
        return f"{value:,.1f}"
    return f"{value:.4g}"
