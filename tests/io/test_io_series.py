"""DICOM series assembly on generated data: sorting, duplicates, gaps, localizers, geometry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from io_builders import SERIES_UID, dicom_bytes, make_ct_dataset

from medviz.io import load_files


def _slice_ids(volume) -> list[int]:
    """Stored value 1024 + k in slice k (see the ct_series fixture) -> HU = k."""
    return [int(round(float(volume.array[z, 1, 1]))) for z in range(volume.shape[0])]


def test_sorted_by_position_not_names_or_instance_number(ct_series):
    files = ct_series(n=6, step=2.5)  # shuffled; InstanceNumber runs opposite to position
    v = load_files(files).series[0].volume
    assert _slice_ids(v) == list(range(6))
    assert v.spacing == pytest.approx((2.5, 0.5, 0.7))
    assert v.orientation == "LPS" and v.affine[2, 3] == pytest.approx(10.0)
    assert v.units == "HU" and v.array[0, 0, 0] == -1024.0  # rescale applied in float32
    assert v.warnings == ()


def test_label_and_meta_carry_no_identifiers(ct_series):
    r = load_files(ct_series(n=3))
    s = r.series[0]
    assert s.label == "CT · 3 slices · 6×8 · series 3"
    text = repr(s.volume.meta) + s.label + s.volume.name
    assert "CANARY" not in text
    assert all("PixelData" not in ds for ds in s.volume.dicom_headers)


def test_identical_sop_uid_deduplicated(ct_series):
    files = ct_series(n=4)
    r = load_files(files + [("copy/" + files[0][0], files[0][1])])
    assert r.series[0].volume.shape[0] == 4
    assert any("duplicate" in n for n in r.notes)


def test_same_position_new_uid_split_into_phases(ct_series):
    phase1 = ct_series(n=4, seed=1)
    phase2 = ct_series(n=4, seed=2)  # same positions, new SOP Instance UIDs
    r = load_files(phase1 + phase2)
    assert [s.volume.shape[0] for s in r.series] == [4, 4]
    assert "phase 1/2" in r.series[0].label and "phase 2/2" in r.series[1].label
    assert any("multi-phase/duplicate positions" in n for n in r.notes)


def test_uneven_duplicates_keep_first_with_note(ct_series):
    files = ct_series(n=4) + ct_series(zs=[10.0])
    r = load_files(files)
    assert len(r.series) == 1 and r.series[0].volume.shape[0] == 4
    assert any("multi-phase/duplicate positions" in n and "first" in n for n in r.notes)


def _file_z(v) -> list[float]:
    return [float((v.affine @ [0, 0, k, 1])[2]) for k in range(v.shape[0])]


def test_a_gap_splits_the_series_so_every_slice_keeps_its_position(ct_series):
    r = load_files(ct_series(zs=[0.0, 2.0, 4.0, 8.0, 10.0]))
    assert [s.volume.shape[0] for s in r.series] == [3, 2]
    for k, (s, zs) in enumerate(zip(r.series, ([0.0, 2.0, 4.0], [8.0, 10.0]))):
        assert s.volume.spacing[0] == pytest.approx(2.0)
        assert _file_z(s.volume) == pytest.approx(zs)  # a uniform affine over the gap: 6 and 8 mm for the last two
        assert f"stack {k + 1} of 2" in s.label
    assert any("a gap of 4.00 mm after slice 3" in n and "usual step 2.00 mm" in n for n in r.notes)


def test_a_change_of_step_splits_the_series(ct_series):
    zs = [0.0, 2.0, 4.0, 6.0, 9.0, 12.0, 15.0]
    r = load_files(ct_series(zs=zs))
    assert [_file_z(s.volume) for s in r.series] == [pytest.approx(zs[:4]), pytest.approx(zs[4:])]
    assert [s.volume.spacing[0] for s in r.series] == [pytest.approx(2.0), pytest.approx(3.0)]
    assert any("a change of step, 3.00 mm after slice 4" in n for n in r.notes)


def test_jitter_within_the_tolerance_keeps_one_volume_with_every_slice_in_place(ct_series):
    zs = [0.0, 2.01, 4.0, 5.99, 8.0]
    r = load_files(ct_series(zs=zs))
    assert len(r.series) == 1
    assert max(abs(a - b) for a, b in zip(_file_z(r.series[0].volume), zs)) <= 0.05


def test_irregular_spacing_is_a_stack_without_3d_geometry(ct_series):
    """Steps 2, 2.3, 1.7, 2 mm: no uniform affine fits, and splitting would leave runs of one or two slices."""
    r = load_files(ct_series(zs=[0.0, 2.0, 4.3, 6.0, 8.0]))
    (choice,) = r.series
    v = choice.volume
    assert v.shape[0] == 5 and v.orientation == "unknown" and "no 3D" in choice.label
    assert [float(v.array[k, 1, 1]) for k in range(5)] == [0.0, 1.0, 2.0, 3.0, 4.0]  # still in position order
    assert any("slice spacing is irregular" in w and "1.70 to 2.30 mm" in w for w in v.warnings)


def test_the_real_gapped_series_has_its_true_positions():
    """pydicom's dicomdirtests/77654033/CT2: slices at -99.48, 103.02, 104.27, 105.52 mm."""
    from pydicom.data import get_testdata_file

    from medviz.io import load_path

    r = load_path(Path(get_testdata_file("dicomdirtests/77654033/CT2/17136")).parent)
    zs = [[round(float((s.volume.affine @ [0, 0, k, 1])[2]), 2) for k in range(s.volume.shape[0])] for s in r.series]
    assert zs == [[-99.48], [103.02, 104.27, 105.52]]


def test_a_localizer_in_another_orientation_is_offered_as_its_own_image(ct_series):
    files = ct_series(n=5)
    loc = make_ct_dataset(np.zeros((6, 8)), orientation=(0, 1, 0, 0, 0, -1), position=(0, -50, 50), instance=99)
    r = load_files(files + [("series/LOC", dicom_bytes(loc))])
    assert [s.volume.shape[0] for s in r.series] == [5, 1]
    assert r.series[0].volume.spacing[0] == pytest.approx(2.0)  # spacing not stretched by the localizer
    assert r.series[1].volume.name == "LOC"
    assert any("1 image(s) in other planes or sizes, or localizers, are not part of its volume" in n for n in r.notes)


def test_an_odd_sized_slice_is_offered_as_its_own_image(ct_series):
    odd = make_ct_dataset(np.zeros((10, 10)), position=(0, 0, 99), instance=50)
    r = load_files(ct_series(n=4) + [("series/ODD", dicom_bytes(odd))])
    assert [(s.volume.shape) for s in r.series] == [(4, 6, 8), (1, 10, 10)]


def test_every_image_of_the_three_plane_localizer_folder_is_reachable_and_counted():
    """pydicom's dicomdirtests/98892003/MR2: 7 files in 3 series that all have SeriesNumber 2 — one image,
    and two 3-plane localizers (3 images in 3 orientations each)."""
    from pydicom.data import get_testdata_file

    from medviz.io import load_path

    r = load_path(Path(get_testdata_file("dicomdirtests/98892003/MR2/4950")).parent)
    assert sum(s.volume.shape[0] for s in r.series) == 7
    assert [s.volume.shape[0] for s in r.series] == [1, 3, 3]
    assert [s.label.split(" · ")[3] for s in r.series] == [f"series 2 [{k} of 3]" for k in (1, 2, 3)]
    notes = [n for n in r.notes if "different planes or sizes" in n]
    assert len(notes) == 2 and "2 [2 of 3]" in notes[0] and "2 [3 of 3]" in notes[1]
    assert all("its 3 images lie in 3 different planes" in n for n in notes)


def test_radial_slices_are_one_stack_of_all_of_them():
    """pydicom's dicomdirtests/98892003/MR700: 7 radial slices, each in its own plane."""
    from pydicom.data import get_testdata_file

    from medviz.io import load_path

    r = load_path(Path(get_testdata_file("dicomdirtests/98892003/MR700/4467")).parent)
    (choice,) = r.series
    assert choice.volume.shape[0] == 7 and choice.volume.orientation == "unknown"
    instance_order = [int(h.InstanceNumber) for h in choice.volume.dicom_headers]
    assert instance_order == [1, 2, 3, 4, 5, 6, 7]


def test_two_series_sharing_a_number_get_separate_notes(ct_series):
    loc = {"orientation": (0, 1, 0, 0, 0, -1), "position": (0, -50, 50), "instance": 99}
    files = ct_series(n=4) + [("series/LOC", dicom_bytes(make_ct_dataset(np.zeros((6, 8)), **loc)))]
    other = "1.2.826.0.1.3680043.8.498.2"
    files += [(f"b/{name}", data) for name, data in ct_series(n=4, series_uid=other)]
    files += [("b/LOC", dicom_bytes(make_ct_dataset(np.zeros((6, 8)), series_uid=other, **loc)))]
    r = load_files(files)
    notes = [n for n in r.notes if "not part of its volume" in n]
    assert len(notes) == 2 and "series 3 [1 of 2]" in notes[0] and "series 3 [2 of 2]" in notes[1]


def test_invalid_orientation_or_position_is_warned_not_dropped():
    for kw, value, expected in (("ImageOrientationPatient", [0, 0, 0, 0, 0, 0], "\\".join(["0.0"] * 6)),
                                ("ImagePositionPatient", [1.0, 2.0], "1.0\\2.0")):
        ds = make_ct_dataset(np.zeros((6, 8)))
        setattr(ds, kw, value)
        v = load_files([("bad.dcm", dicom_bytes(ds))]).series[0].volume
        assert v.orientation == "unknown"
        assert any(f"{kw} is not valid ({expected};" in w and "without patient geometry" in w for w in v.warnings)


def test_several_series_give_several_choices(ct_series):
    a = ct_series(n=3)
    b = ct_series(n=4, series_uid=SERIES_UID + ".2", series_number=7)
    r = load_files(b + a)
    assert [s.volume.shape[0] for s in r.series] == [3, 4]  # ordered by SeriesNumber
    assert [s.key for s in r.series] == ["1", "2"]
    assert r.get("2").label.endswith("series 7")


def test_missing_position_stacks_by_instance_number():
    datasets = []
    for k in range(4):
        px = np.full((6, 8), 1024 + k, dtype=np.int16)
        ds = make_ct_dataset(px, position=None, orientation=None, instance=k + 1)
        datasets.append((f"IM{3 - k}", dicom_bytes(ds)))
    v = load_files(datasets).series[0].volume
    assert _slice_ids(v) == [0, 1, 2, 3]
    assert v.orientation == "unknown"
    assert any("3D geometry is unknown" in w for w in v.warnings)


def test_reversed_orientation_is_flipped_to_lps():
    """IOP (-1,0,0 / 0,-1,0): columns run to the right and rows anterior; loaded as LPS+."""
    files = []
    for k in range(3):
        px = np.zeros((4, 5), dtype=np.int16)
        px[0, 0] = 1024 + 100 + k  # first stored row/column: the most left/posterior voxel
        ds = make_ct_dataset(px, orientation=(-1, 0, 0, 0, -1, 0), position=(0, 0, float(k)), instance=k)
        files.append((f"f{k}", dicom_bytes(ds)))
    v = load_files(files).series[0].volume
    assert v.orientation == "LPS"
    assert np.all(np.diag(v.affine)[:3] > 0)
    assert v.array[0, -1, -1] == 100  # stored (0, 0) is now at the far (left, posterior) corner
    world = v.affine @ [4, 3, 0, 1]
    assert world[:3] == pytest.approx([0, 0, 0])  # the file's IPP is that voxel's position


def test_sagittal_stack_reoriented_and_slice_axis_reported():
    files = []
    for k in range(4):  # sagittal slices along +x (L); rows go to -z (inferior), columns to +y (P)
        ds = make_ct_dataset(np.full((6, 5), 1024 + k), orientation=(0, 1, 0, 0, 0, -1), position=(float(k), 0, 0))
        files.append((f"s{k}", dicom_bytes(ds)))
    v = load_files(files).series[0].volume
    assert v.shape == (6, 5, 4) and v.orientation == "LPS"
    assert v.meta["SourceSliceAxis"] == 2
    assert [int(v.array[0, 0, x]) for x in range(4)] == [0, 1, 2, 3]


def test_gantry_tilt_warning():
    files = []
    for k in range(4):  # positions drift in y while the slice normal is z: sheared stack
        ds = make_ct_dataset(np.zeros((6, 8)), position=(0.0, 0.5 * k, 2.0 * k))
        files.append((f"t{k}", dicom_bytes(ds)))
    v = load_files(files).series[0].volume
    assert any("gantry tilt about 14.0°" in w for w in v.warnings)
    assert v.affine[1, 2] == pytest.approx(0.5)  # the shear is kept in the affine


def test_projection_images_without_geometry_are_not_stacked():
    files = []
    for k in range(2):
        ds = make_ct_dataset(np.zeros((6, 8)), position=None, orientation=None, modality="DX", instance=k)
        del ds.PixelSpacing
        ds.ImagerPixelSpacing = [0.15, 0.15]
        files.append((f"dx{k}", dicom_bytes(ds)))
    r = load_files(files)
    assert [s.volume.shape for s in r.series] == [(1, 6, 8), (1, 6, 8)]
    v = r.series[0].volume
    assert v.spacing[1:] == (0.15, 0.15) and v.spacing_known and v.orientation == "unknown"
    assert any("ImagerPixelSpacing" in w for w in v.warnings)


def test_monochrome1_inversion_formula():
    ds = make_ct_dataset(np.zeros((2, 2)), modality="CR", slope=1.0, intercept=0.0)
    ds.set_pixel_data(np.array([[0, 100], [200, 4095]], dtype=np.uint16), "MONOCHROME1", 12)
    ds.WindowCenter, ds.WindowWidth = 1000, 2000
    v = load_files([("m1", dicom_bytes(ds))]).series[0].volume
    # v' = lo + hi - v with [lo, hi] = [0, 4095], the 12-bit unsigned stored range: high = bright
    np.testing.assert_array_equal(v.array[0], [[4095, 3995], [3895, 0]])
    assert v.meta["WindowCenter"] == 4095 - 1000 and v.meta["MONOCHROME1Inverted"] is True
