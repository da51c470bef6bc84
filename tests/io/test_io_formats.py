"""NIfTI and PNG/JPEG readers on generated files, bundled examples, and the public API surface."""

from __future__ import annotations

import dataclasses
import inspect
import subprocess
import sys

import numpy as np
import pytest
from io_builders import nifti_bytes, png_bytes

import medviz.io as mio
from medviz.io import list_examples, load_example, load_files

# ---- NIfTI ----------------------------------------------------------------------------------


def test_nifti_ras_to_lps_reorientation():
    """A RAS-ordered array becomes LPS+: x and y flipped, z kept; world positions preserved."""
    arr = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4)  # (x, y, z) voxels in RAS
    affine = np.diag([2.0, 3.0, 4.0, 1.0])
    affine[:3, 3] = [10, 20, 30]
    v = load_files([("ras.nii", nifti_bytes(arr, affine))]).series[0].volume
    assert v.shape == (4, 3, 2) and v.orientation == "LPS" and v.spacing == (4.0, 3.0, 2.0)
    assert np.all(np.diag(v.affine)[:3] > 0)
    for i, j, k in [(0, 0, 0), (1, 2, 3), (1, 0, 2)]:
        lps = np.diag([-1, -1, 1, 1]) @ affine @ [i, j, k, 1]
        x, y, z = np.rint(np.linalg.solve(v.affine, lps)[:3]).astype(int)
        assert v.array[z, y, x] == arr[i, j, k]


def test_nifti_gz_equals_plain_and_2d_is_one_slice():
    arr = np.random.default_rng(0).normal(size=(5, 6, 7)).astype(np.float32)
    a = load_files([("a.nii", nifti_bytes(arr))]).series[0].volume
    b = load_files([("a.nii.gz", nifti_bytes(arr, gz=True))]).series[0].volume
    np.testing.assert_array_equal(a.array, b.array)
    assert a.modality == "OT" and a.units == "a.u." and a.array.dtype == np.float32
    flat = load_files([("flat.nii", nifti_bytes(np.ones((5, 6), np.float32)))]).series[0].volume
    assert flat.shape == (1, 6, 5)


# ---- PNG / JPEG -----------------------------------------------------------------------------


def test_png_gray_8_and_16_bit():
    g8 = load_files([("g.png", png_bytes(np.full((3, 4), 200, np.uint8)))]).series[0].volume
    assert g8.array.shape == (1, 3, 4) and g8.array.dtype == np.float32 and g8.array.max() == 200
    assert not g8.spacing_known and g8.orientation == "unknown" and g8.units == "a.u."
    g16 = load_files([("g16.png", png_bytes(np.full((3, 4), 40000, np.uint16)))]).series[0].volume
    assert g16.array.dtype == np.float32 and g16.array.max() == 40000


def test_png_rgba_and_palette_to_rgb():
    rgba = np.zeros((3, 4, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 10
    v = load_files([("c.png", png_bytes(rgba))]).series[0].volume
    assert v.array.shape == (1, 3, 4, 3) and v.array.dtype == np.uint8 and v.units == "RGB"
    assert v.array[0, 0, 0].tolist() == [255, 0, 0] and any("alpha" in w for w in v.warnings)
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgba[..., :3]).convert("P").save(buf, format="PNG")
    assert load_files([("p.png", buf.getvalue())]).series[0].volume.array.shape == (1, 3, 4, 3)


def test_jpeg_rgb_and_gray():
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[..., 1] = 180
    v = load_files([("photo.jpg", png_bytes(rgb, fmt="JPEG"))]).series[0].volume
    assert v.array.shape == (1, 16, 16, 3) and v.meta["Format"] == "JPEG"
    assert abs(int(v.array[0, 8, 8, 1]) - 180) < 5
    g = load_files([("x.jpeg", png_bytes(np.full((8, 8), 90, np.uint8), fmt="JPEG"))]).series[0].volume
    assert g.array.shape == (1, 8, 8) and g.array.dtype == np.float32


# ---- examples -------------------------------------------------------------------------------


def test_examples_listed_with_source_and_licence():
    examples = list_examples()
    assert examples[0].key == "ct_small"
    assert {"ct_small", "mr_small", "ct_series_with_gap", "mr_brain_3d", "us_multiframe"} <= {e.key for e in examples}
    for e in examples:
        assert e.title and e.description and e.source
        assert any(word in e.source for word in ("MIT", "CC0", "BSD", "CC BY 4.0"))


def test_examples_load_without_shared_data(monkeypatch, tmp_path):
    monkeypatch.setenv("MEDVIZ_DATA_DIR", str(tmp_path / "absent"))
    expected = {
        "ct_small": ((1, 128, 128), "HU"),
        "mr_small": ((1, 64, 64), "a.u."),
        "ct_series_with_gap": ((3, 16, 16), "HU"),
        "mr_brain_3d": ((25, 41, 33), "a.u."),
        "us_multiframe": ((30, 240, 320, 3), "RGB"),
        "retina_photo": ((1, 1411, 1411, 3), "RGB"),
        "shepp_logan": ((1, 400, 400), "a.u."),
        "cxr_normal": ((1, 256, 361), "a.u."),
        "cxr_pneumonia": ((1, 256, 434), "a.u."),
    }
    for key, (shape, units) in expected.items():
        v = load_example(key)
        assert v.array.shape == shape and v.units == units, key
    ct = load_example("ct_small")
    assert ct.modality == "CT" and ct.orientation == "LPS" and ct.array.min() < -800 and ct.array.max() > 300


def test_unknown_example_suggests_key():
    with pytest.raises(KeyError, match="Did you mean 'ct_small'"):
        load_example("ct_smal")


# ---- public API -----------------------------------------------------------------------------


def test_public_api_names_and_signatures():
    assert {
        "FileProblem",
        "SeriesChoice",
        "LoadResult",
        "Example",
        "load_files",
        "load_path",
        "list_examples",
        "load_example",
    } <= set(mio.__all__)
    assert [f.name for f in dataclasses.fields(mio.FileProblem)] == ["source", "problem"]
    assert [f.name for f in dataclasses.fields(mio.SeriesChoice)] == ["key", "label", "volume"]
    assert [f.name for f in dataclasses.fields(mio.LoadResult)] == ["series", "problems", "notes"]
    assert [f.name for f in dataclasses.fields(mio.Example)] == ["key", "title", "description", "source"]
    for cls in (mio.FileProblem, mio.SeriesChoice, mio.LoadResult, mio.Example):
        assert cls.__dataclass_params__.frozen
    assert list(inspect.signature(mio.load_files).parameters) == ["files"]
    assert list(inspect.signature(mio.load_path).parameters) == ["path"]
    assert list(inspect.signature(mio.load_example).parameters) == ["key"]


def test_import_is_lazy():
    code = (
        "import sys, medviz.io; print(sorted(m for m in ('pydicom', 'nibabel', 'PIL', 'skimage') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=str(_root()))
    assert out.stdout.strip() == "[]"


def _root():
    from pathlib import Path

    return Path(__file__).resolve().parents[2]
