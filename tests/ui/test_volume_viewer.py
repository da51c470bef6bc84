"""The in-browser viewer's study file: every voxel lands where the Volume's affine says (issue #13 point 6).

The browser viewer (NiiVue) reads the NIfTI that :func:`medviz.io.nifti_write.nifti_bytes_of` writes and reports
positions in its RAS world space, which the component turns into LPS (``(-x, -y, z)``). So for known voxels of
axial, coronal, sagittal and oblique volumes, the file's RAS position of voxel ``(x, y, z)`` negated in x and y
must equal ``Volume.affine @ (x, y, z, 1)``. The build of the component is checked against its sources.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medviz.io.nifti_write import nifti_bytes_of
from medviz.types import Volume

COMPONENT = Path(__file__).resolve().parents[2] / "medviz" / "ui" / "volume_viewer_component"


def _read(data: bytes):
    return nib.Nifti1Image.from_bytes(gzip.decompress(data))


def _volume(rows: np.ndarray, spacing=(2.0, 0.5, 0.7), origin=(10.0, -20.0, 30.0), shape=(4, 5, 6)) -> Volume:
    """A volume whose column ``rows[:, 0]``/``rows[:, 1]``/``rows[:, 2]`` are the x/y/z index directions (LPS)."""
    sz, sy, sx = spacing
    affine = np.eye(4)
    affine[:3, 0], affine[:3, 1], affine[:3, 2] = rows[:, 0] * sx, rows[:, 1] * sy, rows[:, 2] * sz
    affine[:3, 3] = origin
    array = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    return Volume(array=array, spacing=spacing, affine=affine, orientation="LPS")


def _rotation(deg: float) -> np.ndarray:
    t = np.radians(deg)
    return np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1.0]])


AXIAL = np.eye(3)
CORONAL = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])  # x: L, y: inferior, z: posterior
SAGITTAL = np.array([[0, 0, 1.0], [1, 0, 0], [0, -1, 0]])
OBLIQUE = _rotation(20) @ np.array([[1.0, 0, 0], [0, np.cos(0.3), -np.sin(0.3)], [0, np.sin(0.3), np.cos(0.3)]])


@pytest.mark.parametrize("rows", [AXIAL, CORONAL, SAGITTAL, OBLIQUE], ids=["axial", "coronal", "sagittal", "oblique"])
def test_the_viewer_file_puts_every_voxel_at_its_lps_position(rows):
    volume = _volume(rows)
    img = _read(nifti_bytes_of(volume))
    assert img.header["sform_code"] == 1
    for x, y, z in [(0, 0, 0), (5, 0, 0), (0, 4, 0), (0, 0, 3), (3, 2, 1), (5, 4, 3)]:
        ras = img.affine @ [x, y, z, 1]
        lps = np.array([-ras[0], -ras[1], ras[2]])
        np.testing.assert_allclose(lps, (volume.affine @ [x, y, z, 1])[:3], atol=1e-4)
        assert float(np.asanyarray(img.dataobj)[x, y, z]) == float(volume.array[z, y, x])  # same voxel, same value


def test_whole_valued_scalars_travel_as_int16_without_loss():
    ct = _volume(AXIAL)
    ct = Volume(array=ct.array - 1024, spacing=ct.spacing, affine=ct.affine, units="HU", orientation="LPS")
    img = _read(nifti_bytes_of(ct))
    assert img.get_data_dtype() == np.int16
    np.testing.assert_array_equal(np.transpose(np.asanyarray(img.dataobj), (2, 1, 0)), ct.array)
    fractional = Volume(array=ct.array + 0.25, spacing=ct.spacing, affine=ct.affine, orientation="LPS")
    assert _read(nifti_bytes_of(fractional)).get_data_dtype() == np.float32


def test_rgb_travels_as_rgb24_and_a_plain_stack_is_marked_aligned():
    rgb = np.zeros((2, 3, 4, 3), np.uint8)
    rgb[1, 2, 3] = (10, 20, 30)
    volume = Volume(array=rgb, spacing=(1.0, 1.0, 1.0), affine=np.eye(4), units="RGB", orientation="unknown")
    img = _read(nifti_bytes_of(volume))
    data = np.asanyarray(img.dataobj)
    assert img.header["sform_code"] == 2 and data.shape == (4, 3, 2)
    assert tuple(data[3, 2, 1]) == (10, 20, 30)


def test_equal_studies_give_equal_bytes():
    """The hosted file's URL is a hash of its bytes: the browser fetches a study again only when it changed."""
    assert nifti_bytes_of(_volume(AXIAL)) == nifti_bytes_of(_volume(AXIAL))


def test_the_committed_build_matches_its_sources():
    """``build/`` is committed so that CI needs no npm; it must come from the committed sources and lockfile."""
    frontend = COMPONENT / "frontend"
    lock = json.loads((frontend / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/@niivue/niivue"]["version"] == "0.69.0"
    build = (COMPONENT / "build" / "BUILD_SOURCES.sha256").read_text().split()[0]
    assert build == source_digest(frontend)
    notices = (COMPONENT / "build" / "THIRD_PARTY_LICENSES.txt").read_text()
    assert "@niivue/niivue 0.69.0 — BSD-2-Clause" in notices


def source_digest(frontend: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    for name in ("package.json", "package-lock.json", "licenses.mjs", "src/index.ts", "src/index.html"):
        h.update(name.encode() + b"\0" + (frontend / name).read_bytes() + b"\0")
    return h.hexdigest()


def test_source_digest_changes_with_the_sources(tmp_path):
    import shutil

    copy = tmp_path / "frontend"
    shutil.copytree(COMPONENT / "frontend", copy, ignore=shutil.ignore_patterns("node_modules"))
    before = source_digest(copy)
    (copy / "src" / "index.ts").write_text((copy / "src" / "index.ts").read_text() + "\n// changed\n")
    assert source_digest(copy) != before



def test_a_mask_on_the_grid_reads_back_and_a_foreign_grid_is_refused():
    from medviz.io.nifti_write import array_on_grid

    volume = _volume(OBLIQUE)
    mask = (volume.array % 7 == 0).astype(np.uint8)
    np.testing.assert_array_equal(array_on_grid(volume, nifti_bytes_of(volume, mask)), mask)
    other = _volume(AXIAL)
    with pytest.raises(ValueError, match="not on the study's grid"):
        array_on_grid(volume, nifti_bytes_of(other, mask))
    with pytest.raises(ValueError, match="not a readable NIfTI"):
        array_on_grid(volume, b"not a nifti at all" * 30)


@pytest.mark.data
def test_the_viewer_file_of_the_real_ct_and_nifti_carries_their_orientation(data_dir):
    """The viewer derives its orientation labels (and the radiological left/right) from the file's affine: for the
    real CT series and the bundled NIfTI head MR the axis codes of the file equal the Volume's LPS+ layout."""
    from medviz.io import load_path
    from medviz.io.examples import load_example

    ct = load_path(data_dir / "dicom_series_ct_totalsegmentator").series[0].volume
    for volume in (ct, load_example("mr_brain_3d")):
        img = _read(nifti_bytes_of(volume))
        assert volume.orientation == "LPS"
        assert nib.aff2axcodes(img.affine) == ("L", "P", "S")  # x → left, y → posterior, z → superior
