"""Horizontal bar charts for the HTML reports (the alert review, the SLO budget report):
the geometry only; each report's template draws it as inline SVG, so a page needs no
script and no image files."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Bar:
    """One bar of a chart: its row's top, its length in pixels, and its texts."""

    y: int
    width: float
    label: str
    value: str
    colour: str


@dataclass(frozen=True)
class BarChart:
    """A horizontal bar chart's geometry."""

    title: str
    width: int
    height: int
    label_w: int
    bar_h: int
    bars: list[Bar]
    limit_x: float | None  # the vertical reference line, if any
    limit_label: str


def bar_chart(title: str, items: list[tuple[str, float, str]], *, limit: float | None,
              limit_label: str = "", fmt: str = "{:.0f}") -> BarChart | None:
    """Bars of ``(label, value, colour)`` with an optional vertical reference line at
    ``limit``; ``None`` without items. Negative values draw as empty bars."""
    if not items:
        return None
    width, label_w, bar_h = 640, 200, 18
    top = max([v for _, v, _ in items] + ([limit] if limit else []) + [1e-9])
    scale = (width - label_w - 60) / top
    bars = [Bar(y=24 + i * bar_h, width=max(0.0, value) * scale,
                label=label if len(label) <= 28 else label[:27] + "…",
                value=fmt.format(value), colour=colour)
            for i, (label, value, colour) in enumerate(items)]
    return BarChart(title=title, width=width, height=30 + bar_h * len(items) + 10,
                    label_w=label_w, bar_h=bar_h, bars=bars,
                    limit_x=label_w + limit * scale if limit else None,
                    limit_label=limit_label)
