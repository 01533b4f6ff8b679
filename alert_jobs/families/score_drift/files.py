"""Score files (Parquet or CSV) for teams without SQL: the same summaries, via pandas.

Only the needed columns are read, then the window's rows are bucketed with the same
rule as the SQL path (``histogram_from_values``), so a file and a table holding the same
scores give the same bins. Parquet keeps NULL and NaN apart (read with pyarrow
dtypes); in CSV an empty field is NULL and ``nan``/``inf`` are invalid scores.
Parquet needs the ``pyarrow`` package (``pip install 'alert-jobs[parquet]'``).
"""

from __future__ import annotations

import glob
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from alert_jobs.core.errors import SourceError
from alert_jobs.families.score_drift.check import Grid, Histogram, histogram_from_values
from alert_jobs.families.score_drift.source import ALL_HOURS, SEPARATOR, WindowSpec

if TYPE_CHECKING:  # pandas is imported when files are read: the SQL path never pays for it
    import pandas as pd


@dataclass(frozen=True)
class ScoreFiles:
    pattern: str
    time_column: str
    score_column: str
    segment_columns: tuple[str, ...] = ()
    feature_columns: tuple[str, ...] = ()

    @property
    def columns(self) -> list[str]:
        return [self.time_column, self.score_column, *self.segment_columns,
                *self.feature_columns]


def _paths(files: ScoreFiles) -> list[str]:
    paths = sorted(glob.glob(files.pattern)) if glob.has_magic(files.pattern) \
        else [files.pattern]
    if not paths or not all(Path(p).is_file() for p in paths):
        raise SourceError(f"no score files match {files.pattern}")
    return paths


def _read_one(path: str, files: ScoreFiles) -> pd.DataFrame:
    import pandas as pd

    suffix = Path(path).suffix.lower()
    try:
        if suffix == ".parquet":
            try:
                import pyarrow  # noqa: F401
            except ImportError:
                raise SourceError("reading Parquet needs pyarrow: pip install "
                                  "'alert-jobs[parquet]'") from None
            frame = pd.read_parquet(path, columns=files.columns, dtype_backend="pyarrow")
            scores = frame[files.score_column]
            frame["__null"] = scores.isna().to_numpy(dtype=bool)
            frame[files.score_column] = scores.to_numpy(dtype=float, na_value=np.nan)
        elif suffix == ".csv":
            frame = pd.read_csv(path, usecols=files.columns, dtype=str,
                                keep_default_na=False)
            raw = frame[files.score_column].str.strip()
            frame["__null"] = (raw == "").to_numpy(dtype=bool)
            frame[files.score_column] = pd.to_numeric(raw.where(raw != "", "nan"),
                                                      errors="coerce")
            for col in files.feature_columns:
                frame[col] = frame[col].where(frame[col] != "", None)
        else:
            raise SourceError(f"{path}: expected a .parquet or .csv file")
    except SourceError:
        raise
    except ValueError as exc:  # pandas names the missing columns
        raise SourceError(f"{path}: {str(exc).splitlines()[0]}") from None
    except OSError as exc:
        raise SourceError(f"{path}: cannot read: {exc.strerror or exc}") from None
    frame[files.time_column] = pd.to_datetime(frame[files.time_column], utc=True,
                                              errors="coerce")
    return frame


def _frames(files: ScoreFiles, spec: WindowSpec) -> Iterator[pd.DataFrame]:
    import pandas as pd

    start, end = pd.Timestamp(spec.start), pd.Timestamp(spec.end)
    for path in _paths(files):
        frame = _read_one(path, files)
        when = frame[files.time_column]
        yield frame[(when >= start) & (when < end)]


def read_file_histograms(files: ScoreFiles, grid: Grid, spec: WindowSpec, *,
                         threshold: float | None) -> dict[tuple[str, int], Histogram]:
    """Same keys and meaning as :func:`alert_jobs.families.score_drift.source.read_histograms`."""
    import pandas as pd

    parts = [f for f in _frames(files, spec) if len(f)]
    if not parts:
        return {}
    frame = pd.concat(parts, ignore_index=True)
    seg_cols = list(files.segment_columns)
    if spec.segment:
        for col, value in spec.segment.items():
            frame = frame[frame[col].astype(str) == value]
    keys: list[Any] = []
    if spec.by_segment and seg_cols:
        frame = frame.dropna(subset=seg_cols)
        frame = frame.assign(__seg=frame[seg_cols].astype(str).agg(SEPARATOR.join, axis=1))
        keys.append("__seg")
    if spec.by_hour_of_week:
        when = frame[files.time_column]
        frame = frame.assign(__how=(when.dt.dayofweek * 24 + when.dt.hour).astype(int))
        keys.append("__how")
    out: dict[tuple[str, int], Histogram] = {}
    groups = frame.groupby(keys, sort=True) if keys else [((), frame)]
    for key, group in groups:
        key_t = key if isinstance(key, tuple) else (key,)
        segment = str(key_t[0]) if "__seg" in keys else ""
        slot = int(key_t[-1]) if "__how" in keys else ALL_HOURS
        out[(segment, slot)] = histogram_from_values(
            group[files.score_column].to_numpy(dtype=float), grid, threshold=threshold,
            null_mask=group["__null"].to_numpy(dtype=bool),
            features={c: group[c].isna().to_numpy(dtype=bool) for c in files.feature_columns})
    return out


def discover_file_segments(files: ScoreFiles, start: datetime, end: datetime) -> list[str]:
    if not files.segment_columns:
        return []
    seen: set[str] = set()
    for frame in _frames(files, WindowSpec(start, end)):
        cols = list(files.segment_columns)
        values = frame[cols].dropna().astype(str).drop_duplicates()
        seen.update(values.agg(SEPARATOR.join, axis=1).tolist())
    return sorted(seen)
