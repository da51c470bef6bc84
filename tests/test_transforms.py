"""Tests for medviz.imaging.windowing: windowing, automatic windows, presets per volume."""

from __future__ import annotations

import numpy as np
import pytest

from medviz.constants import AUTO_PRESET_NAME, CT_PRESETS, WindowPreset
from medviz.imaging.windowing import (
    FILE_WINDOW_NAME,
    FULL_RANGE_NAME,
    auto_window,
    file_window,
    is_ct,
    look_up_preset,
    window_presets,
    window_to_uint8,
)
from medviz.types import Volume, affine_from_spacing


def _volume(array: np.ndarray, **kw) -> Volume:
    return Volume(array=array, spacing=(1.0, 1.0, 1.0), affine=affine_from_spacing((1.0, 1.0, 1.0)), **kw)


def test_window_maps_low_level_high():
    soft = CT_PRESETS["Soft tissue"]  # 400 / 40 -> -160..240 HU
    out = window_to_uint8(np.array([-1000.0, -160.0, 40.0, 240.0, 3000.0]), soft)
    assert out.dtype == np.uint8
    assert out.tolist() == [0, 0, 128, 255, 255]


def test_window_handles_non_finite_and_zero_width_without_mutating_input():
    values = np.array([np.nan, np.inf, -np.inf, 5.0, 4.0], dtype=np.float32)
    before = values.copy()
    out = window_to_uint8(values, WindowPreset("step", 0.0, 4.5))
    assert out.tolist() == [0, 255, 0, 255, 0]
    np.testing.assert_array_equal(values, before)


def test_auto_window_ignores_nan_and_inf(rng):
    values = rng.normal(100.0, 10.0, size=(4, 32, 32)).astype(np.float32)
    values[0, :4] = np.nan
    values[1, :4] = np.inf
    values[2, :4] = -np.inf
    w = auto_window(values)
    assert np.isfinite(w.width) and np.isfinite(w.level)
    assert 40 < w.width < 70  # 0.5..99.5 percentiles of N(100, 10) span about 5.2 sigma
    assert abs(w.level - 100.0) < 2.0


@pytest.mark.parametrize(
    "values",
    [np.full((2, 8, 8), np.nan, np.float32), np.zeros((1, 8, 8), np.float32), np.full((1, 4, 4), np.inf, np.float32)],
)
def test_auto_window_degenerate_inputs_are_finite(values):
    w = auto_window(values)
    assert np.isfinite(w.low) and np.isfinite(w.high) and w.width > 0
    out = window_to_uint8(values, w)
    assert out.shape == values.shape


def test_auto_window_int16_extremes():
    values = np.array([[[-32768, 0, 32767]]], dtype=np.float32)
    w = auto_window(values, (0.0, 100.0))
    assert w.low == pytest.approx(-32768) and w.high == pytest.approx(32767)


def test_presets_ct_mr_rgb():
    ct = _volume(np.zeros((1, 4, 4), np.float32), modality="CT", units="HU")
    mr = _volume(np.arange(16, dtype=np.float32).reshape(1, 4, 4), modality="MR")
    rgb = _volume(np.zeros((1, 4, 4, 3), np.uint8), units="RGB")
    assert is_ct(ct) and not is_ct(mr) and not is_ct(rgb)
    ct_presets = window_presets(ct)
    assert list(ct_presets)[0] == "Soft tissue"
    assert {(p.width, p.level) for p in ct_presets.values()} >= {(400, 40), (1500, -600), (150, 90), (2500, 480), (80, 40)}
    assert AUTO_PRESET_NAME in ct_presets
    mr_presets = window_presets(mr)
    assert list(mr_presets) == [AUTO_PRESET_NAME, FULL_RANGE_NAME]
    assert mr_presets[FULL_RANGE_NAME].low == 0 and mr_presets[FULL_RANGE_NAME].high == 15
    assert window_presets(rgb) == {}


def test_window_from_file_metadata():
    mr = _volume(np.zeros((1, 4, 4), np.float32), modality="MR", meta={"WindowWidth": [1600.0, 800.0], "WindowCenter": 600})
    presets = window_presets(mr)
    assert list(presets)[0] == FILE_WINDOW_NAME
    assert (presets[FILE_WINDOW_NAME].width, presets[FILE_WINDOW_NAME].level) == (1600.0, 600.0)
    ct = _volume(np.zeros((1, 4, 4), np.float32), modality="CT", units="HU", meta={"WindowWidth": 300, "WindowCenter": 40})
    assert list(window_presets(ct))[:1] == ["Soft tissue"] and FILE_WINDOW_NAME in window_presets(ct)
    assert file_window({"WindowWidth": "abc", "WindowCenter": 1}) is None
    assert file_window({"WindowWidth": 0, "WindowCenter": 1}) is None
    assert file_window({}) is None


def test_look_up_preset_suggests_close_name():
    assert look_up_preset("lung", CT_PRESETS).level == -600
    with pytest.raises(KeyError, match="Did you mean 'Liver'"):
        look_up_preset("Livr", CT_PRESETS)
