"""``checks.score_drift`` in ``alerts.yaml``: batch drift checks of an ML-score table.

Every name that reaches SQL (table, schema, columns) must be a plain identifier
(letters, digits, ``_``); it is then quoted by SQLAlchemy for the database's dialect,
so nothing in the rules file can inject SQL. Values (window bounds, segment values,
thresholds) are always bound parameters.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from alert_jobs.config import (
    Annotations,
    AnnotationsOverride,
    Cron,
    Duration,
    RuleBase,
    RulesSection,
    SecretOrText,
    Strict,
)
from alert_jobs.core.model import NoDataPolicy

IDENTIFIER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"
_IDENT = re.compile(IDENTIFIER_PATTERN)
RESERVED_LABELS = ("check", "feature", "alertname", "severity")
DEFAULT_DRIFT_SCHEDULE = "0 * * * *"
DEFAULT_REFERENCE_SCHEDULE = "0 3 * * *"
SEGMENT_SEPARATOR = "|"


def _identifier(value: Any) -> str:
    if not isinstance(value, str) or not _IDENT.match(value):
        raise PydanticCustomError(
            "identifier",
            "expected a SQL identifier (letters, digits and _, starting with a letter or _, "
            "at most 63 characters), got {value}; names are quoted, never pasted into SQL",
            {"value": repr(value)})
    return value


Identifier = Annotated[str, BeforeValidator(_identifier)]


def _table(value: Any) -> str:
    parts = value.split(".") if isinstance(value, str) else [value]
    if len(parts) > 2 or not all(isinstance(p, str) and _IDENT.match(p) for p in parts):
        raise PydanticCustomError(
            "identifier",
            "expected a table name like scores or ml.scores (identifiers of letters, digits "
            "and _), got {value}; names are quoted, never pasted into SQL",
            {"value": repr(value)})
    return str(value)


TableName = Annotated[str, BeforeValidator(_table)]


def _aware(value: Any) -> Any:
    """Naive times are UTC; others are converted to UTC (SQLite compares UTC text, and
    messages say "UTC")."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value


class Threshold(Strict):
    """A metric that warns at ``warn`` and pages at ``critical`` (both inclusive)."""

    warn: Annotated[float, Field(ge=0)]
    critical: Annotated[float, Field(ge=0)] | None = None

    @model_validator(mode="after")
    def _order(self) -> Threshold:
        if self.critical is not None and self.critical < self.warn:
            raise PydanticCustomError("thresholds", "critical ({critical}) is below warn "
                                      "({warn})", {"critical": self.critical, "warn": self.warn})
        return self


class ReferenceWindow(Strict):
    """What "normal" is.

    - ``fixed``: the ``lookback`` (default 7 days) before the reference was built.
    - ``seasonal``: the same hour of the week (UTC) in each of the last ``weeks`` weeks.
    - ``pinned``: a fixed date range, e.g. the training period (``start``/``end``).
    """

    kind: Literal["fixed", "seasonal", "pinned"] = "fixed"
    lookback: Duration = timedelta(days=7)
    weeks: Annotated[int, Field(ge=1, le=52)] = 4
    start: Annotated[datetime, AfterValidator(_aware)] | None = None
    end: Annotated[datetime, AfterValidator(_aware)] | None = None

    @model_validator(mode="after")
    def _shape(self) -> ReferenceWindow:
        if self.kind == "pinned":
            if self.start is None or self.end is None:
                raise PydanticCustomError("reference", "a pinned reference needs start and end")
            if self.start >= self.end:
                raise PydanticCustomError("reference", "reference start is not before end")
        elif self.start is not None or self.end is not None:
            raise PydanticCustomError("reference", "start/end are only for kind: pinned")
        if self.lookback <= timedelta(0):
            raise PydanticCustomError("reference", "lookback must be positive")
        return self

    def describe(self) -> str:
        """How a message names the reference: "the same hour in the last 4 weeks"."""
        if self.kind == "seasonal":
            return f"the same hour of the week in the last {self.weeks} weeks"
        if self.kind == "pinned":
            assert self.start is not None and self.end is not None
            return f"{self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M} UTC"
        seconds = int(self.lookback.total_seconds())
        for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
            if seconds % size == 0:
                n = seconds // size
                return f"the previous {n} {unit}{'s' if n != 1 else ''}"
        return f"the previous {seconds} seconds"


class HighScore(Strict):
    """Rate of scores above ``threshold`` against its expected rate.

    Alerts only when the current window has at least ``min_samples`` scores AND the
    increase over the expected rate is significant (one-sided two-proportion z-test,
    p < ``alpha``) AND, if set, the rate is above ``max_rate`` — the ML guide's
    "over 20 % above 0.9, but only with at least 10,000 scores".
    """

    threshold: float = 0.9
    expected_rate: Annotated[float, Field(gt=0, lt=1)] | None = None  # None: the reference's
    max_rate: Annotated[float, Field(ge=0, le=1)] | None = None
    critical_rate: Annotated[float, Field(ge=0, le=1)] | None = None
    min_samples: Annotated[int, Field(ge=1)] = 10_000
    alpha: Annotated[float, Field(gt=0, lt=1)] = 0.001


class NullRate(Strict):
    """Null rate of each feature column against the reference's (a broken feature)."""

    max_increase: Annotated[float, Field(gt=0, le=1)] = 0.05  # absolute, e.g. 1 % → 6 %
    critical_increase: Annotated[float, Field(gt=0, le=1)] | None = 0.25
    min_rows: Annotated[int, Field(ge=1)] = 100


class Volume(Strict):
    """Rows in the window against the reference's rate (a silent or flooding pipeline)."""

    min_ratio: Annotated[float, Field(ge=0)] | None = 0.5
    critical_min_ratio: Annotated[float, Field(ge=0)] | None = 0.1
    max_ratio: Annotated[float, Field(gt=0)] | None = None
    min_expected: Annotated[float, Field(ge=0)] = 100  # below this, too few to judge


class ScoreDriftRule(RuleBase):
    """Drift of one model-score table (or files), per segment (model, version, …)."""

    nodata: NoDataPolicy = NoDataPolicy.KEEP_LAST
    database: SecretOrText | None = None
    table: TableName | None = None
    files: str | None = None  # a path or glob of .parquet / .csv files
    time_column: Identifier
    score_column: Identifier
    segment_columns: list[Identifier] = Field(default_factory=list)
    feature_columns: list[Identifier] = Field(default_factory=list)
    segments: list[str] | None = None  # static partitions; None: discovered from the data
    window: Duration = timedelta(hours=1)
    lag: Duration = timedelta(0)  # end the window this long before now (late rows)
    reference: ReferenceWindow = Field(default_factory=ReferenceWindow)
    reference_schedule: Cron = DEFAULT_REFERENCE_SCHEDULE
    score_range: tuple[float, float] = (0.0, 1.0)
    fine_bins: Annotated[int, Field(ge=10, le=100_000)] = 1000
    psi_bins: Annotated[int, Field(ge=2, le=100)] = 10
    min_samples: Annotated[int, Field(ge=1)] = 1000
    psi: Threshold = Field(default_factory=lambda: Threshold(warn=0.1, critical=0.25))
    ks: Threshold | None = Field(default_factory=lambda: Threshold(warn=0.1, critical=0.2))
    mean_shift: Threshold | None = Field(
        default_factory=lambda: Threshold(warn=0.5, critical=1.0))
    std_ratio: Threshold | None = Field(
        default_factory=lambda: Threshold(warn=1.5, critical=2.0))
    high_score: HighScore | None = Field(default_factory=HighScore)
    null_rate: NullRate | None = Field(default_factory=NullRate)
    volume: Volume | None = Field(default_factory=Volume)
    invalid_max_rate: Annotated[float, Field(ge=0, le=1)] | None = 0.01
    sample_percent: Annotated[float, Field(gt=0, le=100)] | None = None  # reference builds
    sample_current: bool = False  # sample the current window too (very large windows)
    query_timeout: Duration = timedelta(seconds=60)
    #: Per segment (its key: ``fraud-v3``, or ``fraud|v3`` for two segment columns), text
    #: and links laid over ``annotations`` for that segment's alerts only: one rule
    #: watches models that mean different things to the business.
    segment_annotations: dict[str, AnnotationsOverride] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _data_science_audience(cls, data: Any) -> Any:
        """Drift messages speak to data scientists unless the rule says otherwise."""
        if isinstance(data, dict):
            notes = data.get("annotations")
            if notes is None:
                data = {**data, "annotations": Annotations(audience="data_science")}
            elif isinstance(notes, dict) and "audience" not in notes:
                data = {**data, "annotations": {**notes, "audience": "data_science"}}
        return data

    @model_validator(mode="after")
    def _source(self) -> ScoreDriftRule:
        if self.files is not None and (self.database is not None or self.table is not None):
            raise PydanticCustomError("source", "give either database + table, or files")
        if self.files is None and (self.database is None or self.table is None):
            raise PydanticCustomError("source", "give database + table (any SQLAlchemy URL), "
                                                "or files (Parquet/CSV path or glob)")
        lo, hi = self.score_range
        if not lo < hi:
            raise PydanticCustomError("score_range", "score_range must be [low, high] with "
                                                     "low < high")
        columns = [self.time_column, self.score_column, *self.segment_columns,
                   *self.feature_columns]
        twice = sorted({c for c in columns if columns.count(c) > 1})
        if twice:
            raise PydanticCustomError("columns", "column(s) used twice: {names}",
                                      {"names": ", ".join(twice)})
        reserved = [c for c in self.segment_columns if c in RESERVED_LABELS]
        if reserved:
            raise PydanticCustomError("segment_columns", "segment column(s) {names} would "
                                      "clash with alert labels of the same name",
                                      {"names": ", ".join(reserved)})
        if self.segments is not None:
            if not self.segment_columns:
                raise PydanticCustomError("segments", "segments need segment_columns")
            width = len(self.segment_columns)
            bad = [s for s in self.segments if len(s.split(SEGMENT_SEPARATOR)) != width]
            if bad:
                raise PydanticCustomError(
                    "segments", "each segment gives one value per segment column, joined by "
                    "'|' (e.g. fraud|v3); got {bad}", {"bad": ", ".join(map(repr, bad))})
            if len(set(self.segments)) != len(self.segments) or not self.segments:
                raise PydanticCustomError("segments", "segments must be unique and not empty")
        self._check_segment_annotations()
        if self.window <= timedelta(0):
            raise PydanticCustomError("window", "window must be positive")
        hs = self.high_score
        if hs is not None and not lo <= hs.threshold <= hi:
            raise PydanticCustomError("high_score", "high_score.threshold is outside "
                                                    "score_range")
        if self.reference.kind == "seasonal" and self.window > timedelta(hours=24):
            raise PydanticCustomError("reference", "seasonal references compare hours of the "
                                                   "week; use a window of at most 24h")
        return self

    def _check_segment_annotations(self) -> None:
        keys = list(self.segment_annotations)
        if not keys:
            return
        if not self.segment_columns:
            raise PydanticCustomError(
                "segment_annotations", "segment_annotations need segment_columns (they are "
                "keyed by segment value); for the whole rule use annotations")
        bad = [k for k in keys if not self.is_segment_key(k)]
        if bad:
            raise PydanticCustomError(
                "segment_annotations", "segment_annotations key(s) {bad} must give one value "
                "per segment column ({columns}), joined by '|'",
                {"bad": ", ".join(map(repr, bad)), "columns": ", ".join(self.segment_columns)})
        if self.segments is not None:
            unknown = [k for k in keys if k not in self.segments]
            if unknown:
                raise PydanticCustomError(
                    "segment_annotations", "segment_annotations name segment(s) {unknown} "
                    "that are not in segments ({known})",
                    {"unknown": ", ".join(map(repr, unknown)),
                     "known": ", ".join(self.segments)})

    def segment_key(self, labels: dict[str, str]) -> str | None:
        """The segment an alert instance belongs to, from its labels (``None``: none)."""
        if not self.segment_columns:
            return ""
        if not all(c in labels for c in self.segment_columns):
            return None
        return SEGMENT_SEPARATOR.join(labels[c] for c in self.segment_columns)

    def annotations_for(self, labels: dict[str, str]) -> Annotations:
        """The rule's annotations with its segment's ``segment_annotations`` laid over."""
        key = self.segment_key(labels)
        override = self.segment_annotations.get(key) if key is not None else None
        return override.over(self.annotations) if override else self.annotations

    @property
    def grid_key(self) -> dict[str, Any]:
        """Settings a stored reference depends on; a change means rebuilding it."""
        hs = self.high_score
        ref = self.reference
        return {
            "source": self.table or self.files, "time": self.time_column,
            "score": self.score_column, "segments": list(self.segment_columns),
            "features": list(self.feature_columns), "range": list(self.score_range),
            "fine_bins": self.fine_bins, "threshold": hs.threshold if hs else None,
            "reference": {"kind": ref.kind, "lookback": ref.lookback.total_seconds(),
                          "weeks": ref.weeks,
                          "start": ref.start.isoformat() if ref.start else None,
                          "end": ref.end.isoformat() if ref.end else None},
            "sample_percent": self.sample_percent,
        }

    def is_segment_key(self, key: str) -> bool:
        """One value per segment column joined by ``|`` (a value holding ``|`` cannot be
        told apart from two values, so such a segment cannot be checked)."""
        if not self.segment_columns:
            return key == ""
        return len(key.split(SEGMENT_SEPARATOR)) == len(self.segment_columns)

    def segment_labels(self, key: str) -> dict[str, str]:
        """``fraud|v3`` → ``{model: fraud, version: v3}``; ``""`` for an unsegmented rule."""
        if not self.segment_columns:
            return {}
        if not self.is_segment_key(key):
            raise ValueError(f"segment {key!r} of rule {self.name} does not give one value "
                             f"per segment column ({', '.join(self.segment_columns)}) "
                             f"joined by '{SEGMENT_SEPARATOR}'")
        values = key.split(SEGMENT_SEPARATOR)
        return dict(zip(self.segment_columns, values, strict=True))


SECTION = RulesSection(family="score_drift", rule_model=ScoreDriftRule, order=30)
