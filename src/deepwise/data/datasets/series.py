"""Bundled time series: the Mauna Loa atmospheric CO2 record (weekly, March 1958 - December 2001).

``files/co2_mauna_loa_weekly.csv`` ships with deepwise (Keeling & Whorf, Scripps / CDIAC; public
domain; the copy distributed with statsmodels — see ``files/CO2_LICENSE.txt``). A rising trend with a
yearly cycle of about +-3 ppm: the classic small series for a forecasting model.

    from deepwise.data.datasets.series import load_co2
    dates, ppm = load_co2()                     # 526 monthly means, float32, no gaps
    dates, ppm = load_co2("weekly", fill=False) # 2,284 weeks, NaN where no value was measured
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from deepwise.data.datasets.errors import DatasetFormatError

CO2_FILE = Path(__file__).resolve().parent / "files" / "co2_mauna_loa_weekly.csv"
N_CO2_WEEKS = 2284

__all__ = ["CO2_FILE", "load_co2"]


@lru_cache(maxsize=1)
def _co2_weekly() -> tuple[np.ndarray, np.ndarray]:
    dates, values = [], []
    with open(CO2_FILE, encoding="ascii") as fh:
        header = fh.readline().strip()
        if header != "date,co2":
            raise DatasetFormatError(f"{CO2_FILE}: expected the header 'date,co2', got {header!r}")
        for lineno, line in enumerate(fh, start=2):
            fields = line.strip().split(",")
            if len(fields) != 2 or len(fields[0]) != 8 or not fields[0].isdigit():
                raise DatasetFormatError(f"{CO2_FILE}:{lineno}: expected 'YYYYMMDD,ppm', got {line.strip()!r}")
            d = fields[0]
            dates.append(f"{d[:4]}-{d[4:6]}-{d[6:]}")
            values.append(float(fields[1]) if fields[1] else np.nan)
    if len(dates) != N_CO2_WEEKS:
        raise DatasetFormatError(f"{CO2_FILE}: expected {N_CO2_WEEKS} weeks, got {len(dates)}")
    d = np.array(dates, dtype="datetime64[D]")
    v = np.array(values, dtype=np.float64)
    if np.any(np.diff(d) <= np.timedelta64(0, "D")):
        raise DatasetFormatError(f"{CO2_FILE}: dates are not strictly increasing")
    d.setflags(write=False)
    v.setflags(write=False)
    return d, v


def _fill_gaps(t: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Linear interpolation over ``t`` (float positions) for the NaN entries of ``v``."""
    known = ~np.isnan(v)
    out = v.copy()
    out[~known] = np.interp(t[~known], t[known], v[known])
    return out


def load_co2(frequency: str = "monthly", fill: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The Mauna Loa CO2 record -> ``(dates, ppm)``, ppm a float32 array.

    ``frequency="monthly"`` (default): 526 calendar-month means, March 1958 - December 2001, dates as
    ``datetime64[M]``; a month is the mean of the weeks dated in it (the 5 months where no week was
    measured (in 1958 and 1964) are interpolated linearly between their neighbours when
    ``fill``, NaN otherwise).
    ``frequency="weekly"``: 2,284 weekly means (dates ``datetime64[D]``), the 59 missing weeks
    interpolated when ``fill``, NaN otherwise.
    """
    if frequency not in ("monthly", "weekly"):
        raise ValueError(f"load_co2: frequency must be 'monthly' or 'weekly', got {frequency!r}")
    dates, values = _co2_weekly()
    if frequency == "weekly":
        v = _fill_gaps(dates.astype(np.float64), values) if fill else values.copy()
        return dates.copy(), v.astype(np.float32)
    months = dates.astype("datetime64[M]")
    first, last = months[0], months[-1]
    n_months = int((last - first).astype(np.int64)) + 1
    index = (months - first).astype(np.int64)
    known = ~np.isnan(values)
    sums = np.bincount(index[known], weights=values[known], minlength=n_months)
    counts = np.bincount(index[known], minlength=n_months)
    with np.errstate(invalid="ignore", divide="ignore"):
        monthly = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    if fill:
        monthly = _fill_gaps(np.arange(n_months, dtype=np.float64), monthly)
    return first + np.arange(n_months), monthly.astype(np.float32)
