"""The bundled Mauna Loa CO2 series."""

from __future__ import annotations

import numpy as np
import pytest

from deepwise.data.datasets.series import CO2_FILE, load_co2


def test_monthly_co2_is_complete_and_plausible():
    dates, ppm = load_co2()
    assert ppm.dtype == np.float32 and ppm.shape == (526,) and len(dates) == 526
    assert str(dates[0]) == "1958-03" and str(dates[-1]) == "2001-12"
    assert not np.isnan(ppm).any()
    assert 313 < ppm[:12].mean() < 317 and 369 < ppm[-12:].mean() < 373  # the Keeling curve's rise
    seasonal = ppm[-24:].reshape(2, 12)
    assert seasonal.argmax(axis=1).tolist() == [4, 4]  # each year's peak in May (index 4 from January)
    assert str(dates[-24]) == "2000-01"


def test_gaps_are_nan_without_fill_and_interpolated_with_it():
    dates, raw = load_co2(fill=False)
    missing = [str(d) for d in dates[np.isnan(raw)]]
    assert missing == ["1958-06", "1958-10", "1964-02", "1964-03", "1964-04"]
    _, filled = load_co2()
    i = list(dates.astype(str)).index("1958-06")
    assert filled[i] == pytest.approx((raw[i - 1] + raw[i + 1]) / 2, abs=1e-4)
    wdates, weekly = load_co2("weekly", fill=False)
    assert weekly.shape == (2284,) and np.isnan(weekly).sum() == 59
    assert str(wdates[0]) == "1958-03-29" and weekly[0] == pytest.approx(316.1)
    with pytest.raises(ValueError, match="frequency must be 'monthly' or 'weekly'"):
        load_co2("daily")


def test_licence_note_ships_next_to_the_data():
    note = (CO2_FILE.parent / "CO2_LICENSE.txt").read_text()
    assert "public domain" in note.lower() and "Keeling" in note
