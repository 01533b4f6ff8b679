"""Input series for rule tests, in promtool's expanding notation (pure).

A rule test (``alert-jobs rules test``) gives each rule's source values as a series,
one value per evaluation interval, written the way ``promtool test rules`` writes them
so that people who know Prometheus read it at once:

``a+bxn``   n+1 values: a, a+b, a+2b, … a+nb  (``a-bxn`` counts down)
``axn``     n+1 times the value a (shorthand of ``a+0xn``)
``_``       no value at this point (the source answered with nothing: ``nodata``)
``_xn``     n such points
``error``   the source failed at this point (``error(timeout)``: with its reason)
``errorxn`` n such points
``7``       one value; values are separated by spaces

Numbers may be written with ``e`` exponents, ``inf`` and a leading sign.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

#: How many points one series may expand to: a year of minutes is 525,600.
MAX_POINTS = 1_000_000

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?inf"
_EXPANDING = re.compile(rf"^(?P<a>{_NUMBER})(?:(?P<op>[-+])(?P<b>{_NUMBER}))?x(?P<n>\d+)$",
                        re.IGNORECASE)
_SINGLE = re.compile(rf"^(?:{_NUMBER})$", re.IGNORECASE)
_BLANK = re.compile(r"^_(?:x(?P<n>\d+))?$")
#: Terms are separated by spaces, except inside an error's parentheses.
_TERMS = re.compile(r"[^\s(]*\([^)]*\)\S*|\S+")
_ERROR = re.compile(r"^error(?:\((?P<why>[^()]*)\))?(?:x(?P<n>\d+))?$")


class SeriesSyntaxError(ValueError):
    """A series that cannot be read; the message names the term and what is allowed."""


@dataclass(frozen=True)
class Value:
    """One point of a series: a number, no value (``number is None``), or a source
    error (``error`` is its reason; ``number`` is None)."""

    number: float | None = None
    error: str | None = None

    @property
    def missing(self) -> bool:
        return self.number is None and self.error is None


MISSING = Value()


def expand(text: str | int | float) -> list[Value]:
    """The points ``text`` stands for, in order (see the module docstring)."""
    if isinstance(text, bool):
        raise SeriesSyntaxError(f"{text!r} is not a series")
    if isinstance(text, int | float):
        return [Value(float(text))]
    points: list[Value] = []
    for term in _TERMS.findall(str(text)):
        points += _term(term)
        if len(points) > MAX_POINTS:
            raise SeriesSyntaxError(f"the series expands to more than {MAX_POINTS:,} points")
    return points


def _term(term: str) -> list[Value]:
    if match := _BLANK.match(term):
        return [MISSING] * (int(match["n"]) if match["n"] else 1)
    if match := _ERROR.match(term):
        why = (match["why"] or "").strip() or "the source failed (simulated)"
        return [Value(error=why)] * (int(match["n"]) if match["n"] else 1)
    if _SINGLE.match(term):
        return [Value(float(term))]
    if match := _EXPANDING.match(term):
        count = int(match["n"])
        if count + 1 > MAX_POINTS:
            raise SeriesSyntaxError(f"{term!r} expands to more than {MAX_POINTS:,} points")
        start = float(match["a"])
        step = float(match["b"]) if match["b"] else 0.0
        if match["op"] == "-":
            step = -step
        if math.isinf(start) and step:
            raise SeriesSyntaxError(f"{term!r}: an infinite start cannot grow")
        return [Value(start + i * step) for i in range(count + 1)]
    raise SeriesSyntaxError(
        f"{term!r} is not a series term: write a number (7), an expanding run "
        "(0+10x30: 0, 10, … 300; 5x3: four times 5), _ for no value (_x3 for three), "
        "or error / error(reason) for a failed read (errorx3 for three)")
