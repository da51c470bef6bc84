"""Every transfer syntax family decodes, using only files shipped in the pydicom wheel (no data dir)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from medviz.io import load_files


def _load(name: str):
    data = Path(str(resources.files("pydicom.data").joinpath("test_files", name))).read_bytes()
    result = load_files([(name, data)])
    assert result.problems == [] and len(result.series) == 1
    return result.series[0].volume


@pytest.fixture(scope="module")
def mr_small() -> np.ndarray:
    return _load("MR_small.dcm").array


@pytest.mark.parametrize(
    ("name", "syntax"),
    [
        ("MR_small_implicit.dcm", "Implicit VR Little Endian"),
        ("MR_small_bigendian.dcm", "Explicit VR Big Endian"),
        ("MR_small_RLE.dcm", "RLE Lossless"),
        ("MR_small_jpeg_ls_lossless.dcm", "JPEG-LS Lossless Image Compression"),
        ("MR_small_jp2klossless.dcm", "JPEG 2000 Image Compression (Lossless Only)"),
    ],
)
def test_lossless_syntaxes_match_uncompressed(mr_small, name, syntax):
    v = _load(name)
    assert v.meta["TransferSyntax"] == syntax
    np.testing.assert_array_equal(v.array, mr_small)


@pytest.mark.parametrize(
    ("name", "syntax", "shape"),
    [
        ("image_dfl.dcm", "Deflated Explicit VR Little Endian", (1, 512, 512)),
        ("SC_rgb_jpeg_dcmtk.dcm", "JPEG Baseline (Process 1)", (1, 100, 100, 3)),
        ("JPGExtended.dcm", "JPEG Extended (Process 2 and 4)", (1, 1024, 256)),
        ("JPEGLSNearLossless_16.dcm", "JPEG-LS Lossy (Near-Lossless) Image Compression", (1, 50, 10)),
        ("SC_rgb_rle_16bit.dcm", "RLE Lossless", (1, 100, 100, 3)),
        ("examples_ybr_color.dcm", "JPEG Baseline (Process 1)", (30, 240, 320, 3)),
    ],
)
def test_other_syntaxes_decode(name, syntax, shape):
    v = _load(name)
    assert v.meta["TransferSyntax"] == syntax and v.array.shape == shape
    assert v.array.dtype == (np.uint8 if len(shape) == 4 else np.float32)


def test_colour_conversions_to_rgb_uint8():
    palette = _load("examples_palette.dcm")  # PALETTE COLOR -> RGB through apply_color_lut
    assert palette.array.shape == (1, 350, 800, 3) and palette.units == "RGB"
    ybr = _load("SC_ybr_full_422_uncompressed.dcm")  # YBR_FULL_422 -> RGB
    assert ybr.array.dtype == np.uint8 and ybr.array.shape == (1, 100, 100, 3)
    # the SC_rgb test images have a red top band: R high, G and B low
    assert ybr.array[0, 2, 50, 0] > 200 and ybr.array[0, 2, 50, 1] < 60


def test_multiframe_rt_dose_grid_geometry():
    v = _load("rtdose.dcm")  # 15 frames placed by GridFrameOffsetVector
    assert v.shape == (15, 10, 10) and v.orientation == "LPS" and v.warnings == ()
