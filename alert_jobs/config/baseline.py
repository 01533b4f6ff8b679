"""``expect.baseline``: an expected range learned from the rule's own history.

Shared by every family that judges one number over time (``sql_metric`` values, the
``redis_quota`` command rate): the maths is :mod:`alert_jobs.core.baseline`, the
history read and the backfill :mod:`alert_jobs.runtime.baseline`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from alert_jobs.config.types import Duration, Strict
from alert_jobs.core.baseline import Settings

Season = Literal["hour_of_week", "hour_of_day", "none"]
Direction = Literal["above", "below", "both"]


class Baseline(Strict):
    """How to learn the expected value and its spread.

    ``season``: compare with the same hour of the week (weekday/weekend and day/night
    both matter), the same hour of the day, or with all of ``history``. ``width``: how
    many robust standard deviations (1.4826 × MAD) from the median a value may stray.
    ``floor``: the smallest deviation that can alert, in the metric's units (a flat
    history has no spread; without a floor its first wobble would page).
    ``adopt_after``: a value that stays outside the band this long is a new level, not an
    incident: the baseline adopts it (``null``: never). ``backfill``: run the query over
    past windows on the first runs so a new rule has a baseline on its first day
    (``sql_metric`` only; a Redis rate cannot be read back in time).
    """

    season: Season = "hour_of_week"
    history: Duration = timedelta(days=28)
    width: Annotated[float, Field(gt=0)] = 4.0
    min_points: Annotated[int, Field(ge=3)] = 20
    direction: Direction = "both"
    floor: Annotated[float, Field(ge=0)] = 0.0
    adopt_after: Duration | None = timedelta(hours=12)
    backfill: bool = True

    @model_validator(mode="after")
    def _history(self) -> Baseline:
        if self.season == "hour_of_week" and self.history < timedelta(days=7):
            raise PydanticCustomError(
                "history", "season hour_of_week needs a history of at least 7d (one week "
                "holds one point per hour of the week); use season hour_of_day for less")
        if self.season == "hour_of_day" and self.history < timedelta(days=1):
            raise PydanticCustomError("history", "season hour_of_day needs a history of at "
                                      "least 1d")
        if self.history <= timedelta(0):
            raise PydanticCustomError("history", "history must be longer than 0s")
        if self.adopt_after is not None and self.adopt_after <= timedelta(0):
            raise PydanticCustomError("adopt_after", "adopt_after must be longer than 0s "
                                      "(or null: never adopt a new level)")
        return self

    def settings(self) -> Settings:
        """As the core's plain settings (:mod:`alert_jobs.core.baseline`)."""
        return Settings(season=self.season, history=self.history, width=self.width,
                        min_points=self.min_points, direction=self.direction,
                        floor=self.floor, adopt_after=self.adopt_after)
