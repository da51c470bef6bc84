"""Rescale Slope/Intercept that cannot be used never give a silently wrong number (pydicom's CT_small.dcm)."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest

from medviz.io import load_files
from medviz.io.finite import replace_non_finite
from medviz.types import LoadError


def _ct_small(**attrs) -> bytes:
    import pydicom
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    for k, v in attrs.items():
        setattr(ds, k, v)
    buf = io.BytesIO()
    with warnings.catch_warnings():  # pydicom warns when writing an invalid DS such as 'NaN': the point here
        warnings.simplefilter("ignore")
        ds.save_as(buf)
    return buf.getvalue()


def _volume(data: bytes):
    result = load_files([("ct.dcm", data)])
    assert len(result.series) == 1
    return result.series[0].volume


def test_a_valid_rescale_gives_hounsfield_units():
    v = _volume(_ct_small())
    assert v.units == "HU" and float(v.array.min()) == -896.0 and v.warnings == ()


@pytest.mark.parametrize("attrs, named", [({"RescaleSlope": "0"}, "Rescale Slope '0'"),
                                          ({"RescaleSlope": "NaN"}, "Rescale Slope 'NaN'"),
                                          ({"RescaleSlope": "inf"}, "Rescale Slope 'inf'"),
                                          ({"RescaleIntercept": "NaN"}, "Rescale Intercept 'NaN'")])
def test_an_unusable_rescale_is_not_replaced_by_one_silently(attrs, named):
    v = _volume(_ct_small(**attrs))
    assert v.units == "a.u."  # stored values: not HU
    assert float(v.array.min()) == 128.0 and np.isfinite(v.array).all()
    assert any(named in w and "not HU" in w for w in v.warnings), v.warnings


def test_a_rescale_beyond_float32_is_refused_with_a_message_in_words():
    with pytest.raises(LoadError) as info:
        load_files([("ct.dcm", _ct_small(RescaleSlope="1e38"))])
    msg = str(info.value)
    assert "ct.dcm" in msg and "beyond what 32-bit floats can hold" in msg
    assert "Error" not in msg and "Exception" not in msg


def test_non_finite_values_are_replaced_and_counted():
    values = np.array([[1.0, np.nan], [-np.inf, 3.0]], np.float32)
    out, note = replace_non_finite(values)
    np.testing.assert_array_equal(out, [[1.0, 1.0], [1.0, 3.0]])
    assert note == "2 NaN/Inf voxel(s) replaced by 1 (the minimum finite value)"
    assert np.isnan(values[0, 1])  # the input is not modified
    assert replace_non_finite(np.zeros(3, np.float32))[1] is None
